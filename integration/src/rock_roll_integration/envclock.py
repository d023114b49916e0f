"""How long the rollout thread waits on environments, measured inside roll's own env manager.

roll's `TrajEnvManager` runs every env `reset`/`step` in its thread pool and blocks on the futures; an
`EnvClock` wraps that pool so each blocking `result()` is timed and each submitted call counted. The
time is what the trainer loses to envs (calls in flight together are counted once, as wall time).
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from dataclasses import dataclass
from typing import Any

from roll.agentic.env_manager import TrajEnvManager


@dataclass(frozen=True)
class EnvCounts:
    """A snapshot: env steps and resets submitted, seconds the rollout thread blocked on them."""

    steps: int = 0
    resets: int = 0
    wait_s: float = 0.0

    def __sub__(self, other: EnvCounts) -> EnvCounts:
        return EnvCounts(self.steps - other.steps, self.resets - other.resets, self.wait_s - other.wait_s)


class EnvClock:
    """Counts env calls and the wall time spent blocked on them, over every manager it is attached to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps = 0
        self._resets = 0
        self._wait_s = 0.0

    def attach(self, manager: TrajEnvManager) -> None:
        """Route `manager`'s env calls through this clock (idempotent per manager)."""
        if not isinstance(manager.pool, _TimedPool):
            manager.pool = _TimedPool(manager.pool, self)  # type: ignore[assignment]

    def snapshot(self) -> EnvCounts:
        with self._lock:
            return EnvCounts(self._steps, self._resets, self._wait_s)

    def _submitted(self, name: str) -> None:
        with self._lock:
            if name == "step":
                self._steps += 1
            elif name == "reset":
                self._resets += 1

    def _waited(self, seconds: float) -> None:
        with self._lock:
            self._wait_s += seconds


class _TimedFuture:
    """The part of a Future the env manager uses (`result`), timed."""

    def __init__(self, future: cf.Future, clock: EnvClock) -> None:
        self._future, self._clock = future, clock

    def result(self, timeout: float | None = None) -> Any:
        t0 = time.perf_counter()
        try:
            return self._future.result(timeout=timeout)
        finally:
            self._clock._waited(time.perf_counter() - t0)


class _TimedPool:
    """An executor facade: `submit` counts the call by its method name; `shutdown` passes through."""

    def __init__(self, pool: cf.Executor, clock: EnvClock) -> None:
        self._pool, self._clock = pool, clock

    def submit(self, fn, /, *args, **kwargs) -> _TimedFuture:
        self._clock._submitted(getattr(fn, "__name__", ""))
        return _TimedFuture(self._pool.submit(fn, *args, **kwargs), self._clock)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)
