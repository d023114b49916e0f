"""The link from `SokobanSandboxEnv` to its game server: a port-forward stream (the admin's
`WS /sandboxes/{id}/portforward`, relayed by the rocklet to 127.0.0.1:<port> inside the sandbox), one
WebSocket message each way per request instead of a bash command per request."""

from __future__ import annotations

import contextlib
from typing import Any

from roll.envs.event_loop import run_sync
from roll.errors import GameServerClosed


class GameLink:
    """One open stream at a time; requests are JSON lines and each reply is the line starting with `prefix`
    (lines left over from an earlier, abandoned request are skipped)."""

    def __init__(self, sandbox: Any, port: int) -> None:
        self.sandbox, self.port = sandbox, port
        self._cm: Any = None
        self._stream: Any = None
        self._buffer = b""

    @property
    def is_open(self) -> bool:
        return self._stream is not None

    def open(self, timeout: float) -> None:
        cm = self.sandbox.network.port_forward(self.port, open_timeout=timeout)
        self._stream = run_sync(cm.__aenter__(), timeout + 5)
        self._cm, self._buffer = cm, b""

    def exchange(self, line: str, prefix: str, timeout: float) -> str:
        return run_sync(self._exchange(line.encode("ascii"), prefix.encode("ascii")), timeout)

    async def _exchange(self, line: bytes, prefix: bytes) -> str:
        await self._stream.send(line + b"\n")
        while True:
            while b"\n" in self._buffer:
                reply, self._buffer = self._buffer.split(b"\n", 1)
                if reply.startswith(prefix):
                    return reply.decode("ascii")
            chunk = await self._stream.receive()
            if not chunk:
                raise GameServerClosed(f"the game server on port {self.port} closed the connection")
            self._buffer += chunk

    def close(self) -> None:
        """Drop the stream (one attempt; a dead admin must not block the caller)."""
        cm, self._cm, self._stream = self._cm, None, None
        if cm is not None:
            with contextlib.suppress(Exception):
                run_sync(cm.__aexit__(None, None, None), 5)
