"""Concurrent generation calls merged into one engine batch: env-manager threads each ask for their own prompts,
and whatever arrives while the engine is busy goes into its next batch instead of waiting for a turn of its own."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Pending:
    items: Sequence[Any]
    done: threading.Event = field(default_factory=threading.Event)
    results: list[Any] | None = None
    error: BaseException | None = None


class CallCoalescer:
    """`coalescer(items)` returns `run(items)`'s results for those items; a dedicated thread calls `run` on
    everything queued since its last call (callers' items in arrival order), so `run` never runs twice at once
    and a caller waits for at most the batch in flight plus its own."""

    def __init__(self, run: Callable[[list[Any]], list[Any]], name: str = "coalescer") -> None:
        self._run = run
        self._cond = threading.Condition()
        self._queue: list[_Pending] = []
        self._closed = False
        self.batches = 0  # engine calls made so far (fewer than the calls served when callers overlap)
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        """Calls waiting for the next batch."""
        with self._cond:
            return len(self._queue)

    def __call__(self, items: Sequence[Any]) -> list[Any]:
        pending = _Pending(items)
        with self._cond:
            if self._closed:
                raise RuntimeError("the generation queue is closed")
            self._queue.append(pending)
            self._cond.notify()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.results is not None
        return pending.results

    def close(self) -> None:
        """Finish what is queued, then stop the thread; later calls raise."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue, []
            flat = [item for p in batch for item in p.items]
            self.batches += 1
            try:
                results = self._run(flat)
                if len(results) != len(flat):
                    raise RuntimeError(f"the engine answered {len(results)} of {len(flat)} requests")
            except BaseException as exc:  # every caller of the batch gets the engine's error
                for p in batch:
                    p.error = exc
                    p.done.set()
                continue
            start = 0
            for p in batch:
                p.results = results[start : start + len(p.items)]
                start += len(p.items)
                p.done.set()
