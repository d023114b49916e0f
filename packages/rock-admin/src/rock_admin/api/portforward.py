"""`WS /apis/envs/sandbox/v1/sandboxes/{id}/portforward?port=N` (upstream's path): the client's WebSocket relayed
to the sandbox rocklet's `/portforward` (over its Unix socket or TCP), frames and close reasons passed through.

The API key is checked before the handshake (`Middleware`); past it the socket is accepted and every refusal is
a close code with a reason: 1008 for a bad `port` or a sandbox that is not running, 1011 when the rocklet or the
port does not answer, and the rocklet's own close (1000 when the TCP server closed) passed on as it came.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
from litestar import WebSocket, websocket
from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import ConnectionClosed

from rock_admin.errors import ServiceError
from rock_admin.service.dataplane import DataPlane, Sandbox
from rocklet.portforward import (
    INTERNAL_ERROR,
    NORMAL,
    POLICY_VIOLATION,
    close,
    parse_port,
    pump_both,
    receive_bytes,
)

#: The rocklet accepts at once (it connects to the port afterwards): a slow handshake is a stuck rocklet.
OPEN_TIMEOUT = 10.0
#: Close codes that never travel in a close frame (RFC 6455 §7.4.1): what the client is sent instead.
_UNSENDABLE = {1005: NORMAL, 1006: INTERNAL_ERROR, 1015: INTERNAL_ERROR}


async def _dial(plane: DataPlane, sb: Sandbox, port: int) -> ClientConnection:
    handle = sb.handle
    assert handle is not None
    endpoint = plane.endpoint(handle)
    token = plane.token(sb)
    options: dict[str, Any] = {
        "additional_headers": {"X-API-Key": token} if token else {},
        "open_timeout": OPEN_TIMEOUT,
        "compression": None,  # opaque bytes: deflate would cost CPU on both hops for little
        "max_size": None,  # the client's frame sizes are the client's business; the rocklet caps its own
    }
    path = f"/portforward?port={port}"
    if endpoint.uds:
        return await unix_connect(endpoint.uds, uri=f"ws://rocklet{path}", **options)
    url = httpx.URL(endpoint.url)
    return await connect(f"ws://{url.host}:{url.port or 80}{path}", **options)


async def _open(plane: DataPlane, sandbox_id: str, port: int) -> tuple[Sandbox, ClientConnection]:
    """The rocklet's socket; a vanished route is refreshed once (a read node's cache may be stale)."""
    sb = plane.running(sandbox_id)
    plane.touch(sb)
    try:
        return sb, await _dial(plane, sb, port)
    except OSError:
        newer = await plane.refresh(sb)
        if newer is None:
            raise
        return newer, await _dial(plane, newer, port)


async def _pump(
    socket: WebSocket[Any, Any, Any], upstream: ClientConnection, plane: DataPlane, sb: Sandbox
) -> None:
    async def to_sandbox() -> None:
        while (data := await receive_bytes(socket)) is not None:
            await upstream.send(data)
            plane.touch(sb)  # an open forward in use keeps the sandbox from the idle stop

    async def to_client() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in upstream:
                await socket.send_bytes(message if isinstance(message, bytes) else message.encode())
                plane.touch(sb)

    try:
        client_closed, _ = await pump_both(to_sandbox(), to_client())
    finally:
        await upstream.close()
    if client_closed:
        return  # the rocklet was told above
    code = upstream.close_code if upstream.close_code is not None else INTERNAL_ERROR
    reason = upstream.close_reason or ""
    if code == 1006:
        reason = f"sandbox {sb.id}: the connection to the rocklet was lost"
    await close(socket, _UNSENDABLE.get(code, code), reason)


@websocket("/sandboxes/{sandbox_id:str}/portforward")
async def portforward(socket: WebSocket[Any, Any, Any], sandbox_id: str) -> None:
    """TCP port `port` inside the sandbox, as binary frames both ways (upstream ROCK's port forwarding)."""
    await socket.accept()
    try:
        port = parse_port(socket.query_params.get("port"))
    except ValueError as exc:
        await close(socket, POLICY_VIOLATION, str(exc))
        return
    plane: DataPlane = socket.app.state.data
    try:
        sb, upstream = await _open(plane, sandbox_id, port)
    except ServiceError as exc:
        await close(socket, POLICY_VIOLATION, str(exc))
        return
    except Exception as exc:  # the rocklet refused or did not answer: say which sandbox and why
        await close(socket, INTERNAL_ERROR, f"sandbox {sandbox_id}: the rocklet did not answer: {exc}")
        return
    await _pump(socket, upstream, plane, sb)


async def refuse_handshake(scope: dict[str, Any], receive: Any, send: Any, status: int, body: bytes) -> None:
    """Answer a WebSocket handshake with an HTTP error and its JSON body (ASGI's `websocket.http.response`),
    or with a bare refusal (the server's 403) where the server lacks that extension."""
    await receive()  # websocket.connect
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": POLICY_VIOLATION})
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})
