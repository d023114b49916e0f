"""Deadlines on rocklet calls at the cost of a dict entry per call: one watchdog task, awake only while calls
are in flight, cancels the tasks whose deadline passed once a second (`asyncio.timeout` costs a timer per call,
10+ µs on the admin's hot path).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")
#: How often the watchdog looks (a deadline is kept to within this).
TICK = 1.0


class Deadlines:
    def __init__(self) -> None:
        self._due: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._watchdog: asyncio.Task[None] | None = None

    async def run(self, call: Awaitable[T], seconds: float) -> T:
        """Await `call`; past `seconds` (± `TICK`) raise `TimeoutError` instead."""
        task = asyncio.current_task()
        assert task is not None
        self._due[task] = time.monotonic() + seconds
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())
        try:
            return await call
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            self._expired.discard(task)
            task.uncancel()  # the cancel was ours: the caller sees a timeout
            raise TimeoutError from None
        finally:
            self._due.pop(task, None)
            self._expired.discard(task)

    async def _watch(self) -> None:
        try:
            while self._due:
                await asyncio.sleep(TICK)
                now = time.monotonic()
                for task, due in list(self._due.items()):
                    if due <= now and task not in self._expired:
                        self._expired.add(task)
                        task.cancel()
        finally:
            self._watchdog = None
