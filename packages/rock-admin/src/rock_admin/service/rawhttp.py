"""A minimal keep-alive HTTP/1.1 client over a Unix socket or TCP, for the admin's hottest path (GEM reset/step).

httpx costs about half a millisecond of CPU per request; this costs a few tens of microseconds. It speaks only
what the rocklet answers on that path (a JSON body with Content-Length) and raises rocklet errors like
`RockletClient` does.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from rock.rocklet_client import FORWARDED_REQUEST_ID, raise_for_response
from rock_admin.runtimes.base import Endpoint


class RawPool:
    def __init__(self, endpoint: Endpoint, token: str, size: int = 16) -> None:
        self.endpoint = endpoint
        if endpoint.url:
            address = httpx.URL(endpoint.url)
            self._tcp: tuple[str, int] | None = (address.host, address.port or 80)
        else:
            self._tcp = None
        self._auth = f"X-API-Key: {token}\r\n".encode() if token else b""
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(size)

    async def post(self, path: str, body: bytes) -> bytes:
        return await self.request(b"POST", path, body)

    async def get(self, path: str) -> bytes:
        return await self.request(b"GET", path, b"")

    async def request(self, method: bytes, path: str, body: bytes) -> bytes:
        async with self._slots:
            for attempt in (0, 1):
                reused = bool(self._idle)
                conn = self._idle.pop() if reused else await self._connect()
                try:
                    status, payload = await self._exchange(conn, method, path, body)
                except (ConnectionError, asyncio.IncompleteReadError, OSError):
                    conn[1].close()
                    if reused and attempt == 0:  # a kept connection the server closed: once more, fresh
                        continue
                    raise
                self._idle.append(conn)
                if status != 200:
                    request = httpx.Request(method.decode(), f"http://rocklet{path}")
                    raise_for_response(httpx.Response(status, content=payload, request=request))
                return payload
        raise ConnectionError("unreachable")  # pragma: no cover

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._tcp is not None:
            return await asyncio.open_connection(*self._tcp)
        return await asyncio.open_unix_connection(self.endpoint.uds)

    async def _exchange(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], method: bytes, path: str, body: bytes
    ) -> tuple[int, bytes]:
        reader, writer = conn
        request_id = FORWARDED_REQUEST_ID.get()
        writer.write(
            method
            + b" "
            + path.encode()
            + b" HTTP/1.1\r\nHost: rocklet\r\nContent-Type: application/json\r\n"
            + self._auth
            + (b"X-Request-ID: " + request_id.encode() + b"\r\n" if request_id else b"")
            + b"Content-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await reader.readexactly(length)

    def close(self) -> None:
        for _, writer in self._idle:
            with contextlib.suppress(Exception):
                writer.close()
        self._idle.clear()
