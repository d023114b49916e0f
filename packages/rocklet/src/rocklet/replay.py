"""SWE-ReX's `X-Request-ID` replay cache, bounded: a request sent again with the same id (a client retrying
after a lost connection) is answered with the first attempt's reply and never runs twice.

- Only requests that change something (every method but GET/HEAD) that carry the header take part.
- A duplicate that arrives while the first attempt runs waits for it, then gets its reply.
- The first attempt runs to its end even when its client is gone (it is shielded from cancellation).
- Bounds: replies are kept `ttl` seconds, at most `max_entries` of them and `max_bytes` in all; a reply over
  `max_entry_bytes` is not kept, and a retry of it gets 409 instead of a second run. Expired entries are
  dropped when a new one comes (no timers: an idle rocklet does not wake up).
- The API-key check sits outside this layer, so a replay never skips authentication (unlike SWE-ReX's).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from typing import Any

#: Longest accepted `X-Request-ID` (a uuid4 is 36 characters).
MAX_ID_LENGTH = 256
_SKIPPED_METHODS = ("GET", "HEAD", "OPTIONS")


class _Entry:
    __slots__ = ("body", "done", "expires", "headers", "kept", "route", "size", "status")

    def __init__(self, route: str) -> None:
        self.route = route
        self.done = asyncio.Event()
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.kept = True  # False: the reply was too large (or never came) to keep
        self.expires = 0.0


class ReplayCache:
    """Replies by request id, within the bounds above."""

    def __init__(self, *, ttl: float, max_entries: int, max_bytes: int, max_entry_bytes: int) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_entry_bytes = min(max_entry_bytes, max_bytes)
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, request_id: bytes) -> _Entry | None:
        entry = self._entries.get(request_id)
        if entry is not None and entry.done.is_set() and entry.expires <= time.monotonic():
            self._drop(request_id)
            return None
        return entry

    def begin(self, request_id: bytes, route: str) -> _Entry:
        self._prune(room=1)
        entry = self._entries[request_id] = _Entry(route)
        return entry

    def finish(self, entry: _Entry, failed: bool = False) -> None:
        if failed or not entry.kept or entry.status == 0:
            entry.kept = False
            entry.body, entry.headers = [], []
            entry.size = 0
        self._bytes += entry.size
        entry.expires = time.monotonic() + self.ttl
        entry.done.set()
        self._prune(room=0)

    def _drop(self, request_id: bytes) -> None:
        entry = self._entries.pop(request_id)
        if entry.done.is_set():
            self._bytes -= entry.size

    def _prune(self, room: int) -> None:
        """Drop expired entries, then the oldest finished ones while over the bounds (never one in flight)."""
        now = time.monotonic()

        def over() -> bool:
            return len(self._entries) + room > self.max_entries or self._bytes > self.max_bytes

        for request_id, entry in list(self._entries.items()):
            if not entry.done.is_set():
                continue
            if entry.expires <= now or over():
                self._drop(request_id)
            else:
                break


def _reply(status: int, detail: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"detail": detail}).encode()
    return (
        status,
        [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        body,
    )


async def _send(send: Any, status: int, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    for chunk in chunks[:-1]:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": chunks[-1] if chunks else b""})


def replay_middleware(cache_of: Any) -> Any:
    """A Litestar middleware factory; `cache_of()` gives the current `ReplayCache` (the zygote re-creates it
    for every sandbox it forks)."""

    def factory(app: Any) -> Any:
        async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope["method"] in _SKIPPED_METHODS:
                await app(scope, receive, send)
                return
            request_id = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
            if not request_id:
                await app(scope, receive, send)
                return
            if len(request_id) > MAX_ID_LENGTH:
                status, headers, body = _reply(
                    422, f"X-Request-ID: at most {MAX_ID_LENGTH} characters, got {len(request_id)}"
                )
                await _send(send, status, headers, [body])
                return
            cache: ReplayCache = cache_of()
            route = f"{scope['method']} {scope['path']}"
            entry = cache.lookup(request_id)
            if entry is not None:
                await _replay(entry, route, request_id, send)
                return
            await _first(app, cache, cache.begin(request_id, route), scope, receive, send)

        return middleware

    return factory


async def _replay(entry: _Entry, route: str, request_id: bytes, send: Any) -> None:
    rid = request_id.decode("latin-1")
    if entry.route != route:
        status, headers, body = _reply(
            409, f"X-Request-ID {rid!r} was already used for {entry.route}, not {route}: use a new id"
        )
        await _send(send, status, headers, [body])
        return
    await entry.done.wait()
    if not entry.kept:
        status, headers, body = _reply(
            409,
            f"X-Request-ID {rid!r}: the request already ran, but its reply was not kept for a replay (over "
            "the replay cache's per-reply limit, or it ended without one); it is not run a second time",
        )
        await _send(send, status, headers, [body])
        return
    await _send(send, entry.status, entry.headers, entry.body)


async def _first(
    app: Any, cache: ReplayCache, entry: _Entry, scope: dict[str, Any], receive: Any, send: Any
) -> None:
    client_gone = False

    async def capture(message: dict[str, Any]) -> None:
        nonlocal client_gone
        if message["type"] == "http.response.start":
            entry.status = message["status"]
            entry.headers = list(message.get("headers") or [])
        elif message["type"] == "http.response.body" and entry.kept:
            chunk = message.get("body", b"")
            entry.size += len(chunk)
            if entry.size > cache.max_entry_bytes:
                entry.kept = False
                entry.body = []
            elif chunk:
                entry.body.append(bytes(chunk))
        if not client_gone:
            try:
                await send(message)
            except OSError:  # the client left: the request still runs to its end, for a retry
                client_gone = True

    def done(task: asyncio.Future[None]) -> None:
        cache.finish(entry, failed=task.cancelled() or task.exception() is not None)

    task = asyncio.ensure_future(app(scope, receive, capture))
    task.add_done_callback(done)
    await asyncio.shield(task)
