"""uvicorn's server without its 10-per-second tick: an idle rocklet sleeps until a request or a signal comes.

uvicorn's `main_loop` wakes every 0.1 s to refresh the `Date` header and to look at `should_exit`; at
~0.45 ms of CPU per second per rocklet that is half a core for 1,000 idle sandboxes. Here the `Date` header
is made when a response asks for it (at most once a second) and setting `should_exit` (signal handler or
another thread) wakes the loop itself.
"""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate

import uvicorn
from uvicorn.server import ServerState


class _LazyDateState(ServerState):
    """`default_headers` read per response: the `Date` header is remade when the second has changed."""

    def __init__(self, extra: list[tuple[bytes, bytes]], date_header: bool) -> None:
        self._extra = extra
        self._date_header = date_header
        self._second = -1
        self._headers: list[tuple[bytes, bytes]] = list(extra)
        super().__init__()

    @property  # type: ignore[override]
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        if self._date_header:
            now = int(time.time())
            if now != self._second:
                self._second = now
                self._headers = [(b"date", formatdate(now, usegmt=True).encode()), *self._extra]
        return self._headers

    @default_headers.setter
    def default_headers(self, value: list[tuple[bytes, bytes]]) -> None:
        """uvicorn assigns it (empty at first, then from its tick): ours is derived, nothing to keep."""


class QuietServer(uvicorn.Server):
    """A `uvicorn.Server` whose main loop waits on an event instead of polling."""

    def __init__(self, config: uvicorn.Config) -> None:
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit = False
        super().__init__(config)
        if not config.loaded:
            config.load()
        self.server_state = _LazyDateState(config.encoded_headers, config.date_header)

    @property  # type: ignore[override]
    def should_exit(self) -> bool:
        return self._exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._exit = value
        if value and self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while not self.should_exit:
            await self._wake.wait()
            self._wake.clear()
