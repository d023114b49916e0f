"""A TCP listener that forwards each connection's bytes to a rocklet's endpoint (Unix socket or TCP): how the
admin reaches a sandbox on another host without any Ray RPC on the data path."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

from rock_admin.runtimes.base import Endpoint

CHUNK = 256 * 1024


async def _open(target: Endpoint) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if target.uds:
        return await asyncio.open_unix_connection(target.uds)
    url = urlsplit(target.url)
    return await asyncio.open_connection(url.hostname, url.port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then pass the half-close on (HTTP clients may shut their side down first)."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


async def serve_forwarder(host: str, target: Endpoint) -> asyncio.Server:
    """Listen on `host` (an ephemeral port) and forward every connection to `target`."""

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await _open(target)
        except OSError:
            writer.close()  # the rocklet is gone: the client sees the connection drop, as it would directly
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()

    return await asyncio.start_server(connection, host, 0)
