"""One private asyncio loop in a daemon thread, shared by the synchronous env adapters that drive the
async ROCK SDK: env manager threads submit coroutines to it and block on the result, so many envs in
many threads share one loop (and its HTTP connections) instead of each running a loop of its own."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _shared_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="roll-envs-loop", daemon=True).start()
            _loop = loop
        return _loop


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run `coro` on the shared loop and wait for it; on timeout it is cancelled and TimeoutError raised."""
    future = asyncio.run_coroutine_threadsafe(coro, _shared_loop())
    try:
        return future.result(timeout)
    except cf.TimeoutError:
        future.cancel()
        raise TimeoutError(f"gave up after {timeout:g} s") from None
