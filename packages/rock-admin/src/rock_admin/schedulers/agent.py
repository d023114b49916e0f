"""The node agent: one detached Ray actor per node (pinned to it), which owns that node's runtime (e.g. its
zygote), starts and stops sandboxes there, gives each a TCP forwarder on the node's IP, and reports exits.

It is a plain class here (Ray makes it an async actor in `ray.RayScheduler`), so importing it needs no Ray.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from rock_admin.runtimes.base import Handle, SandboxSpec
from rock_admin.runtimes.registry import create_runtime
from rock_admin.schedulers.forward import serve_forwarder

log = logging.getLogger("rock_admin.ray_agent")


class NodeAgent:
    """Runs sandboxes on one Ray node with that node's runtime; the admin talks to rocklets directly."""

    def __init__(
        self, node_id: str, host: str, kind: str, state_dir: str, runtime_kwargs: dict[str, Any]
    ) -> None:
        self.node_id = node_id
        self.host = host
        # One directory per node: several nodes may share a host (and a file system) in a test cluster.
        self.state_dir = os.path.join(state_dir, node_id[:16])
        self.runtime = create_runtime(kind, state_dir=self.state_dir, **runtime_kwargs)
        self.forwarders: dict[str, asyncio.Server] = {}
        #: Exits in order: {"sandbox_id", "pid", "url", "reason"}; the admin reads them from a cursor.
        self.exits: list[dict[str, Any]] = []
        self._changed: asyncio.Event | None = None
        self._opened: asyncio.Lock | None = None
        self._ready = False

    async def _open(self) -> None:
        """Start (or adopt) the node runtime's helpers once, e.g. the process runtime's zygote."""
        if self._opened is None:
            self._opened = asyncio.Lock()
        async with self._opened:
            if not self._ready:
                ensure = getattr(self.runtime, "ensure_zygote", None)
                if ensure is not None:
                    await ensure()
                self._ready = True

    async def start(self, spec: SandboxSpec) -> Handle:
        await self._open()
        spec.env = {**spec.env, "ROCK_NODE_ID": self.node_id}
        handle = await self.runtime.start(spec)
        try:
            server = await serve_forwarder(self.host, self.runtime.endpoint(handle))
        except OSError:
            await self.runtime.stop(handle)
            raise
        self.forwarders[spec.sandbox_id] = server
        port = server.sockets[0].getsockname()[1]
        handle.url = f"http://{self.host}:{port}"
        handle.node_id = self.node_id
        self.runtime.watch(handle, self._exited)
        return handle

    def _exited(self, handle: Handle) -> None:
        self._close_forwarder(handle.sandbox_id)
        try:
            reason = f"{self.runtime.exit_reason(handle)} (on node {self.node_id})"
        except Exception as exc:  # the reason is a courtesy; the exit must be reported regardless
            reason = f"the sandbox's processes ended on node {self.node_id} ({type(exc).__name__}: {exc})"
        self.exits.append(
            {"sandbox_id": handle.sandbox_id, "pid": handle.pid, "url": handle.url, "reason": reason}
        )
        self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def _close_forwarder(self, sandbox_id: str) -> None:
        server = self.forwarders.pop(sandbox_id, None)
        if server is not None:
            server.close()

    async def stop(self, handle: Handle) -> None:
        self._close_forwarder(handle.sandbox_id)
        await self.runtime.stop(handle)

    async def remove(self, handle: Handle) -> None:
        await asyncio.to_thread(self.runtime.remove, handle)

    async def is_running(self, handle: Handle) -> bool:
        return self.runtime.is_running(handle) and handle.sandbox_id in self.forwarders

    async def exit_reason(self, handle: Handle) -> str:
        return self.runtime.exit_reason(handle)

    async def events(self, cursor: int) -> tuple[int, list[dict[str, Any]]]:
        """Exits after `cursor`, waiting until there is one: the admin keeps one such call in flight per node,
        and its failure (the actor died) is how the admin learns the node is lost."""
        while len(self.exits) <= cursor:
            self._changed = self._changed or asyncio.Event()
            self._changed.clear()
            await self._changed.wait()
        return len(self.exits), self.exits[cursor:]

    async def shutdown(self) -> None:
        """Stop serving and stop the node runtime's helpers (the admin's `stop_on_exit`)."""
        for sandbox_id in list(self.forwarders):
            self._close_forwarder(sandbox_id)
        stop_zygote = getattr(self.runtime, "stop_zygote", None)
        if stop_zygote is not None:
            stop_zygote()
        with contextlib.suppress(Exception):
            await self.runtime.aclose()
