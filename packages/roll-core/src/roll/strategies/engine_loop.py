"""Continuous batching over a step-driven engine (vLLM's `LLMEngine`): one thread owns the engine and steps it;
requests from any caller join the running batch at its next step, and a caller gets its results as soon as its
own requests finish, however long the others run. Work that needs the engine alone (weight sync, sleep/wake) runs
once the requests in flight are done, with new ones held back meanwhile, so no request sees two weight versions."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class StepEngine(Protocol):
    """What the loop needs of an engine; step() returns outputs that carry `request_id` and `finished`."""

    def add_request(self, request_id: str, prompt: Any, params: Any) -> Any: ...

    def abort_request(self, request_ids: list[str]) -> None: ...

    def step(self) -> list[Any]: ...


@dataclass(eq=False)
class _Call:
    """One caller's requests: (prompt, params) pairs, answered together."""

    requests: Sequence[tuple[Any, Any]]
    ids: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


@dataclass
class _Solo:
    """Work that runs on the engine alone."""

    fn: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class EngineLoop:
    def __init__(self, engine: StepEngine, name: str = "engine-loop") -> None:
        self._engine = engine
        self._cond = threading.Condition()
        self._waiting: list[_Call] = []
        self._solo: deque[_Solo] = deque()
        self._running: dict[str, _Call] = {}  # request id → its call; touched by the loop thread only
        self._ids = itertools.count()
        self._closed = False
        self.steps = 0  # engine steps taken (fewer than requests × tokens when requests share steps)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def generate(self, requests: Sequence[tuple[Any, Any]]) -> list[Any]:
        """The engine's final output for each (prompt, params), in order; an engine error is raised here."""
        call = _Call(list(requests))
        if not call.requests:
            return []
        self._put(self._waiting.append, call)
        call.done.wait()
        if call.error is not None:
            raise call.error
        return [call.results[i] for i in call.ids]

    def exclusive(self, fn: Callable[[], T]) -> T:
        """`fn()` on the loop thread once no request is in flight; requests that arrive meanwhile wait for it."""
        job = _Solo(fn)
        self._put(self._solo.append, job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def close(self) -> None:
        """Stop the loop; waiting and running calls get an error. A second call does nothing."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _put(self, add: Callable[[Any], None], item: Any) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the engine loop is closed")
            add(item)
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not (self._closed or self._waiting or self._solo or self._running):
                    self._cond.wait()
                if self._closed:
                    self._fail_all(RuntimeError("the engine was closed while this request waited"))
                    return
                job = self._solo.popleft() if self._solo and not self._running else None
                admitted: list[_Call] = []
                if not self._solo and job is None:  # calls wait while solo work is pending
                    admitted, self._waiting = self._waiting, []
            if job is not None:
                self._run_solo(job)
                continue
            for call in admitted:
                self._admit(call)
            if self._running:
                self._step()

    def _admit(self, call: _Call) -> None:
        """Add a call's requests; one the engine refuses fails that call alone (its others are aborted)."""
        try:
            for prompt, params in call.requests:
                request_id = str(next(self._ids))
                self._engine.add_request(request_id, prompt, params)
                call.ids.append(request_id)
                self._running[request_id] = call
        except Exception as exc:
            for request_id in call.ids:
                self._running.pop(request_id, None)
            if call.ids:
                self._engine.abort_request(call.ids)
            call.fail(exc)

    def _step(self) -> None:
        try:
            outputs = self._engine.step()
        except BaseException as exc:  # the engine broke: every request in flight shares its fate
            for call in set(self._running.values()):
                call.fail(exc)
            self._running.clear()
            return
        self.steps += 1
        for output in outputs:
            call = self._running.get(output.request_id) if output.finished else None
            if call is None:
                continue
            del self._running[output.request_id]
            call.results[output.request_id] = output
            if len(call.results) == len(call.ids):
                call.done.set()

    def _run_solo(self, job: _Solo) -> None:
        try:
            job.result = job.fn()
        except BaseException as exc:
            job.error = exc
        job.done.set()

    def _fail_all(self, error: BaseException) -> None:
        for call in [*self._waiting, *self._running.values()]:
            call.fail(error)
        for job in self._solo:
            job.error = error
            job.done.set()
        self._waiting, self._running = [], {}
        self._solo.clear()
