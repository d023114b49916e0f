"""Env calls with deadlines that follow the machine: measured latencies, probes of slow envs, progress.

Each env call runs in the env manager's pool and is timed from the moment it starts running (time queued
behind other calls does not count). Its deadline is `env_timeout_s` (twice that for the first call of a
fresh env, which starts its sandbox), raised to 3x the p90 latency measured for that kind of call. A call
past its deadline is not yet a failure: an env that answers a health probe (`env.healthy()`, e.g. "the
sandbox is alive") gets the same time once more; only then, or when the probe fails, the call has failed.
"""

from __future__ import annotations

import concurrent.futures as cf
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# what each kind of call is, in progress lines and errors
KIND_LABELS = {"start": "starts", "reset": "resets", "step": "steps"}
START_DEADLINE_FACTOR = 2.0  # the first call of a fresh env starts its sandbox: more generous
LATENCY_FACTOR = 3.0  # a deadline is at least this many times the measured p90 of its kind
MAX_START_CONCURRENCY = 4  # fresh envs starting at once: more only slows each start on a small machine


class EnvCallTimeout(TimeoutError):
    """An env call outlived its deadline (and the one extension a healthy env gets)."""


class LatencyStats:
    """Recent durations of successful env calls, per kind ("start", "reset", "step")."""

    def __init__(self, window: int = 256) -> None:
        self._lock = threading.Lock()
        self._seconds: dict[str, deque[float]] = {}
        self._window = window

    def record(self, kind: str, seconds: float) -> None:
        with self._lock:
            self._seconds.setdefault(kind, deque(maxlen=self._window)).append(seconds)

    def quantile(self, kind: str, q: float) -> float | None:
        with self._lock:
            values = sorted(self._seconds.get(kind, ()))
        if not values:
            return None
        return values[min(len(values) - 1, int(q * len(values)))]

    def count(self, kind: str) -> int:
        with self._lock:
            return len(self._seconds.get(kind, ()))

    def describe(self, noun: str = "env") -> str:
        """'sandbox starts take 45 s p50 / 80 s p90 (12 calls), steps take ...' or 'no env call finished'."""
        with self._lock:
            measured = {k: sorted(v) for k, v in self._seconds.items() if v}
        if not measured:
            return f"no {noun} call has finished yet"
        parts = []
        for kind in KIND_LABELS:
            if kind in measured:
                values = measured[kind]
                p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
                parts.append(
                    f"{noun} {KIND_LABELS[kind]} take {fmt_seconds(statistics.median(values))} p50 / "
                    f"{fmt_seconds(p90)} p90 ({len(values)} calls)"
                )
        return ", ".join(parts) + " on this machine"


def fmt_seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.2g} s"


@dataclass
class EnvCall:
    """One submitted call: which slot, what kind, its future, when it started running."""

    slot: Any
    kind: str
    future: cf.Future
    started: list[float | None] = field(default_factory=lambda: [None])
    extended: bool = False
    timed_out_after: float | None = None


class EnvCaller:
    """Submits env calls to a pool and waits for a set of them under adaptive deadlines."""

    def __init__(self, pool: cf.Executor, env_timeout_s: float) -> None:
        self.pool = pool
        self.env_timeout_s = env_timeout_s
        self.stats = LatencyStats()
        self.counts = {"start": 0, "reset": 0, "step": 0}
        self.wait_s = 0.0  # wall time the rollout thread blocked on env calls
        self.extensions = 0  # calls that outlived a deadline and were given more time after a probe
        self._starts = threading.BoundedSemaphore(MAX_START_CONCURRENCY)

    def deadline(self, kind: str) -> float:
        base = self.env_timeout_s * (START_DEADLINE_FACTOR if kind == "start" else 1.0)
        p90 = self.stats.quantile(kind, 0.9)
        return base if p90 is None else max(base, LATENCY_FACTOR * p90)

    def submit(self, slot: Any, kind: str, fn: Callable[..., Any], *args: Any) -> EnvCall:
        call = EnvCall(slot, kind, cf.Future())

        def run() -> Any:
            gate = self._starts if kind == "start" else None
            if gate is not None:
                gate.acquire()
            try:
                call.started[0] = t0 = time.monotonic()
                result = fn(*args)
                self.stats.record(kind, time.monotonic() - t0)
                return result
            finally:
                if gate is not None:
                    gate.release()

        self.counts[kind] += 1
        call.future = self.pool.submit(run)
        return call

    def gather(
        self,
        calls: list[EnvCall],
        probe: Callable[[Any], bool],
        report: Callable[[str], None] | None = None,
    ) -> list[Any]:
        """Each call's result, or the exception it raised, or an EnvCallTimeout. `probe(slot)` decides
        whether an env past its deadline is healthy enough for one more deadline; `report(text)` hears
        what the wait is for, about once a second once it has lasted half a second."""
        t0 = time.monotonic()
        pending = {c.future: c for c in calls}
        last_report = t0 - 0.5  # calls answered within half a second are not worth a report
        while pending:
            now = time.monotonic()
            if report is not None and now - last_report >= 1.0:
                report(self.waiting_text(list(pending.values()), now))
                last_report = now
            done, _ = cf.wait(list(pending), timeout=self._next_wake(pending.values(), now))
            for future in done:
                pending.pop(future)
            now = time.monotonic()
            for call in list(pending.values()):
                if call.started[0] is None:
                    continue
                limit = self.deadline(call.kind) * (2 if call.extended else 1)
                if now - call.started[0] <= limit:
                    continue
                if not call.extended and probe(call.slot):
                    call.extended = True
                    self.extensions += 1
                    continue
                call.timed_out_after = now - call.started[0]
                pending.pop(call.future)
        self.wait_s += time.monotonic() - t0
        return [self._outcome(c) for c in calls]

    def _next_wake(self, pending, now: float) -> float:
        wake = 1.0
        for call in pending:
            if call.started[0] is not None:
                limit = self.deadline(call.kind) * (2 if call.extended else 1)
                wake = min(wake, call.started[0] + limit - now)
        return max(0.01, wake)

    @staticmethod
    def _outcome(call: EnvCall) -> Any:
        if call.timed_out_after is not None:
            extra = " (after one extension: the env answered a health probe)" if call.extended else ""
            return EnvCallTimeout(f"timed out after {fmt_seconds(call.timed_out_after)}{extra}")
        try:
            return call.future.result(timeout=0)
        except Exception as exc:
            return exc

    def waiting_text(self, pending: list[EnvCall], now: float) -> str:
        """'waiting for 12 env starts (slowest 31 s)' for the calls still out."""
        parts = []
        for kind, label in KIND_LABELS.items():
            mine = [c for c in pending if c.kind == kind]
            if not mine:
                continue
            running = [now - c.started[0] for c in mine if c.started[0] is not None]
            queued = len(mine) - len(running)
            text = f"{len(mine)} env {label}"
            if running:
                text += f" (slowest {fmt_seconds(max(running))})"
            if queued:
                text += f", {queued} queued"
            parts.append(text)
        return "waiting for " + ", ".join(parts)
