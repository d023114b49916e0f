"""The admin's raw keep-alive client against a scripted HTTP/1.1 server: Content-Length bodies (whole and in
chunks), a chunked reply refused with a clear error (and its connection not reused), a stale kept connection
resent once on a fresh one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from rock_admin.runtimes.base import Endpoint
from rock_admin.service.rawhttp import RawPool

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
CHUNKED = b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n{"ok":true}\r\n0\r\n\r\n'


@contextlib.asynccontextmanager
async def server(tmp_path: Path, replies: list[bytes | None]) -> AsyncIterator[list[int]]:
    """Answers each request with the next reply (None: close the connection instead); yields connections seen."""
    connections = [0]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while replies:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line[15:])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                reply = replies.pop(0)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
        writer.close()

    srv = await asyncio.start_unix_server(serve, path=str(tmp_path / "s.sock"))
    try:
        yield connections
    finally:
        srv.close()


def test_content_length_bodies_on_one_connection(tmp_path: Path) -> None:
    async def go() -> None:
        async with server(tmp_path, [OK, OK]) as connections:
            pool = RawPool(Endpoint(uds=str(tmp_path / "s.sock")), "t")
            assert await pool.post("/execute", b"{}") == b'{"ok":true}'
            reply = await pool.open(b"POST", "/read_file", b"{}", inline_max=4)
            assert reply.chunks is not None and b"".join([c async for c in reply.chunks]) == b'{"ok":true}'
            assert connections[0] == 1
            pool.close()

    asyncio.run(go())


def test_chunked_reply_is_refused(tmp_path: Path) -> None:
    async def go() -> None:
        async with server(tmp_path, [CHUNKED, OK]) as connections:
            pool = RawPool(Endpoint(uds=str(tmp_path / "s.sock")), "t")
            with pytest.raises(httpx.RemoteProtocolError, match="/execute with Transfer-Encoding: chunked"):
                await pool.post("/execute", b"{}")
            assert await pool.post("/execute", b"{}") == b'{"ok":true}'  # on a fresh connection
            assert connections[0] == 2
            pool.close()

    asyncio.run(go())


def test_stale_kept_connection_is_resent_once(tmp_path: Path) -> None:
    async def go() -> None:
        async with server(tmp_path, [OK, None, OK]) as connections:
            pool = RawPool(Endpoint(uds=str(tmp_path / "s.sock")), "t")
            assert await pool.post("/execute", b"{}") == b'{"ok":true}'
            assert await pool.post("/execute", b"{}") == b'{"ok":true}'
            assert connections[0] == 2
            pool.close()

    asyncio.run(go())
