"""Port forwarding to a TCP port inside a sandbox, over the admin's `WS /sandboxes/{id}/portforward?port=`.

    async with sandbox.network.port_forward(8000) as stream:       # one TCP connection, as a byte stream
        await stream.send(b"GET / HTTP/1.0\\r\\n\\r\\n")
        reply = await stream.read()                                # until the server closes
    async with sandbox.network.local_forward(8000) as fwd:         # a local listener (like `ssh -L`)
        httpx.get(f"http://127.0.0.1:{fwd.port}/")

Upstream ROCK serves the endpoint but its SDK has no helper for it; these names are ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus

from rock.exceptions import RockError
from rock.rocklet_client import shared_ssl_context

if TYPE_CHECKING:
    from rock.sdk.sandbox.client import Sandbox

log = logging.getLogger("rock.sdk.portforward")
#: Bytes read from a local connection per frame.
CHUNK = 64 * 1024


class PortForwardError(RockError, ConnectionError):
    """The forward was refused or ended abnormally: `code` is the WebSocket close code (or the HTTP status of a
    refused handshake), `reason` what the admin or the rocklet said (e.g. "port 8000: connection refused")."""

    def __init__(self, message: str, *, code: int | None, reason: str, port: int, sandbox_id: str | None):
        super().__init__(message)
        self.code, self.reason, self.port, self.sandbox_id = code, reason, port, sandbox_id


class PortForwardStream:
    """One TCP connection to `port` inside the sandbox. `receive()` returns b"" once the server has closed."""

    def __init__(self, ws: ClientConnection, port: int, sandbox_id: str | None) -> None:
        self._ws, self.port, self.sandbox_id = ws, port, sandbox_id

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self._ws.close_reason

    def _error(self) -> PortForwardError:
        code, reason = self._ws.close_code, self._ws.close_reason or ""
        return PortForwardError(
            f"port forward to port {self.port} of sandbox {self.sandbox_id} closed ({code}): {reason}",
            code=code,
            reason=reason,
            port=self.port,
            sandbox_id=self.sandbox_id,
        )

    async def send(self, data: bytes) -> None:
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise self._error() from exc

    async def receive(self) -> bytes:
        """The next bytes the server sent; b"" after a clean close; `PortForwardError` after any other."""
        try:
            message = await self._ws.recv()
        except ConnectionClosedOK:
            return b""
        except ConnectionClosed as exc:
            raise self._error() from exc
        return message if isinstance(message, bytes) else message.encode()

    async def read(self) -> bytes:
        """Everything until the server closes."""
        return b"".join([chunk async for chunk in self])

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self.receive():
            yield chunk

    async def close(self) -> None:
        await self._ws.close()


def _ws_url(sandbox: Sandbox, port: int) -> str:
    base = sandbox.url
    scheme, rest = base.split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/sandboxes/{sandbox._need_id()}/portforward?port={port}"


@contextlib.asynccontextmanager
async def port_forward(
    sandbox: Sandbox, port: int, open_timeout: float = 30.0
) -> AsyncIterator[PortForwardStream]:
    """A `PortForwardStream` to TCP `port` inside the sandbox, closed when the block ends."""
    url = _ws_url(sandbox, port)
    try:
        ws = await connect(
            url,
            additional_headers=sandbox._headers(),
            ssl=shared_ssl_context() if url.startswith("wss:") else None,
            open_timeout=open_timeout,
            compression=None,
            max_size=None,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        body = exc.response.body.decode(errors="replace")[:500]
        raise PortForwardError(
            f"port forward to port {port} of sandbox {sandbox.sandbox_id} refused: HTTP {status}: {body}",
            code=status,
            reason=body,
            port=port,
            sandbox_id=sandbox.sandbox_id,
        ) from exc
    try:
        yield PortForwardStream(ws, port, sandbox.sandbox_id)
    finally:
        await ws.close()


@dataclass
class LocalForward:
    """A listener on `host:port` whose every connection is forwarded to `remote_port` inside the sandbox."""

    host: str
    port: int
    remote_port: int
    #: Why the latest forwarded connection ended abnormally (None while none has).
    last_error: str | None = None


async def _splice(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: PortForwardStream
) -> None:
    async def up() -> None:
        while data := await reader.read(CHUNK):
            await stream.send(data)

    async def down() -> None:
        async for chunk in stream:
            writer.write(chunk)
            await writer.drain()

    sending = asyncio.ensure_future(up())
    receiving = asyncio.ensure_future(down())
    try:
        # A local EOF only ends the sending half: the reply may still be coming. The forward is over when
        # the sandbox side closes (or the local side goes away and writing to it fails).
        await receiving
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)


@contextlib.asynccontextmanager
async def local_forward(
    sandbox: Sandbox, port: int, local_port: int = 0, host: str = "127.0.0.1"
) -> AsyncIterator[LocalForward]:
    """Listen on `host:local_port` (0: a free port, see `.port`) until the block ends; each connection gets
    its own forward to `port` inside the sandbox."""
    handlers: set[asyncio.Task[None]] = set()
    forward = LocalForward(host=host, port=0, remote_port=port)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            async with port_forward(sandbox, port) as stream:
                await _splice(reader, writer, stream)
        except (PortForwardError, OSError) as exc:
            forward.last_error = str(exc)
            log.warning("%s", exc)
        finally:
            handlers.discard(task)
            writer.close()

    server = await asyncio.start_server(handle, host, local_port)
    forward.port = server.sockets[0].getsockname()[1]
    try:
        yield forward
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
