"""The admin's deadlines on rocklet calls (one watchdog, not a timer per call): a call past its deadline raises
TimeoutError, a call that finishes in time is never cancelled afterwards, a cancel from outside stays a cancel,
and an idle admin keeps no watchdog awake."""

from __future__ import annotations

import asyncio
import time

import pytest

from rock_admin.service.deadlines import TICK, Deadlines


def test_a_late_call_times_out_and_a_quick_one_is_left_alone() -> None:
    async def main() -> None:
        deadlines = Deadlines()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await deadlines.run(asyncio.sleep(30), 0.5)
        assert time.monotonic() - started < 0.5 + TICK + 1
        assert await deadlines.run(asyncio.sleep(0, "ok"), 0.5) == "ok"
        await asyncio.sleep(TICK + 0.5)  # a watchdog round after the quick call: nothing is cancelled
        assert deadlines._watchdog is None  # nothing in flight: no wake-ups

    asyncio.run(main())


def test_a_cancel_from_outside_stays_a_cancel() -> None:
    async def main() -> None:
        deadlines = Deadlines()
        task = asyncio.ensure_future(deadlines.run(asyncio.sleep(30), 60))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
