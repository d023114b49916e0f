"""`WS /portforward?port=N` (upstream ROCK's port forwarding): a TCP connection to 127.0.0.1:N as the rocklet
sees it (inside a sandbox: the sandbox's own network namespace), relayed both ways as binary WebSocket frames.

The socket is accepted first, so every refusal comes as a close code with a reason the client can read: 1008
for a bad `port`, 1011 when nothing answers on it; 1000 once the TCP server has closed its side.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Coroutine
from typing import Any

#: Upstream forwards unprivileged ports only (and never 22).
MIN_PORT = 1024
MAX_PORT = 65535
CONNECT_TIMEOUT = 10.0
#: Bytes read from the TCP side per frame (upstream: 4096; larger reads mean fewer frames for bulk data).
READ_SIZE = 64 * 1024
#: RFC 6455 §5.5: a close frame's payload is at most 125 bytes, two of them the code.
MAX_REASON_BYTES = 123

POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
NORMAL = 1000
_DIGITS = re.compile(r"[0-9]{1,5}")


def parse_port(raw: str | None) -> int:
    """The `port` query parameter as an int in 1024..65535; a `ValueError` naming `port` otherwise."""
    if raw is None or raw == "":
        raise ValueError(f"port: the query parameter is required (an integer in {MIN_PORT}..{MAX_PORT})")
    if not _DIGITS.fullmatch(raw):
        raise ValueError(f"port: must be an integer in {MIN_PORT}..{MAX_PORT}, got {raw[:16]!r}")
    port = int(raw)
    if not MIN_PORT <= port <= MAX_PORT:
        raise ValueError(f"port: must be in {MIN_PORT}..{MAX_PORT}, got {port}")
    return port


def close_reason(text: str) -> str:
    """`text` cut to what a close frame can carry (whole UTF-8 characters)."""
    data = text.encode()
    if len(data) <= MAX_REASON_BYTES:
        return text
    return data[: MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."


async def receive_bytes(socket: Any) -> bytes | None:
    """The next frame's payload (a text frame as UTF-8); None once the client has closed."""
    event = await socket.receive()
    if event["type"] == "websocket.disconnect":
        return None
    data = event.get("bytes")
    return data if data is not None else (event.get("text") or "").encode()


async def close(socket: Any, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):  # the client may already be gone
        await socket.close(code=code, reason=close_reason(reason))


async def pump_both(
    upload: Coroutine[Any, Any, None], download: Coroutine[Any, Any, None]
) -> tuple[bool, BaseException | None]:
    """Run the client->server and server->client pumps until one ends, then stop the other. Returns whether
    the client ended it (the upload finished cleanly) and the first error of a pump that ended."""
    up, down = asyncio.ensure_future(upload), asyncio.ensure_future(download)
    try:
        done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
    client_closed = up in done and up.exception() is None
    return client_closed, next((t.exception() for t in done if t.exception() is not None), None)


async def serve(socket: Any) -> None:
    """Handle one `/portforward` WebSocket (a Litestar `WebSocket`) to its end."""
    await socket.accept()
    try:
        port = parse_port(socket.query_params.get("port"))
    except ValueError as exc:
        await close(socket, POLICY_VIOLATION, str(exc))
        return
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), timeout=CONNECT_TIMEOUT
        )
    except asyncio.TimeoutError:  # not the builtin one before Python 3.11
        await close(socket, INTERNAL_ERROR, f"port {port}: connect timed out after {CONNECT_TIMEOUT:g} s")
        return
    except OSError as exc:
        why = "connection refused, nothing listens there" if isinstance(exc, ConnectionRefusedError) else exc
        await close(socket, INTERNAL_ERROR, f"port {port}: {why}")
        return
    try:
        await _relay(socket, reader, writer, port)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _relay(socket: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
    async def to_tcp() -> None:
        while (data := await receive_bytes(socket)) is not None:
            if data:
                writer.write(data)
                await writer.drain()

    async def to_client() -> None:
        while data := await reader.read(READ_SIZE):
            await socket.send_bytes(data)

    client_closed, failed = await pump_both(to_tcp(), to_client())
    if client_closed:
        return  # nothing left to tell it
    if failed is None:
        await close(socket, NORMAL, f"port {port}: the server closed the connection")
    else:
        await close(socket, INTERNAL_ERROR, f"port {port}: {type(failed).__name__}: {failed}")
