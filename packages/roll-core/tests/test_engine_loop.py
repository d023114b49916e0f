"""EngineLoop's scheduling over a step-driven engine: requests join a running batch, solo work waits for the
requests in flight, an error reaches exactly the callers it concerns. The engine here is a small scripted one
(each request finishes after the number of steps its params say); the vllm engine suite runs the real one."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from roll.strategies.engine_loop import EngineLoop


@dataclass
class _Out:
    request_id: str
    finished: bool
    prompt: str


class ScriptedEngine:
    def __init__(self, step_s: float = 0.01) -> None:
        self.active: dict[str, list] = {}  # id → [prompt, steps left]
        self.step_s = step_s
        self.aborted: list[str] = []
        self.fail_next_step: BaseException | None = None
        self.steps = 0

    def add_request(self, request_id: str, prompt: str, params: int) -> None:
        if params <= 0:
            raise ValueError(f"prompt {prompt!r}: steps must be positive")
        self.active[request_id] = [prompt, params]

    def abort_request(self, request_ids: list[str]) -> None:
        for request_id in request_ids:
            self.aborted.append(request_id)
            self.active.pop(request_id, None)

    def step(self) -> list[_Out]:
        time.sleep(self.step_s)
        if self.fail_next_step is not None:
            exc, self.fail_next_step = self.fail_next_step, None
            raise exc
        self.steps += 1
        out = []
        for request_id, state in list(self.active.items()):
            state[1] -= 1
            if state[1] == 0:
                del self.active[request_id]
                out.append(_Out(request_id, True, state[0]))
        return out


def _in_thread(fn, *args):
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = fn(*args)
        except BaseException as exc:
            box["error"] = exc
        box["at"] = time.monotonic()

    t = threading.Thread(target=run)
    t.start()
    return t, box


def _wait_for(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.002)


def test_a_call_joins_the_running_batch_and_returns_before_a_longer_one():
    engine = ScriptedEngine()
    loop = EngineLoop(engine)
    long_t, long_box = _in_thread(loop.generate, [("long", 40)])
    _wait_for(lambda: engine.steps >= 3)
    short = loop.generate([("a", 2), ("b", 3)])
    assert [o.prompt for o in short] == ["a", "b"]  # each caller's outputs in its own order
    assert engine.active and "long" in [s[0] for s in engine.active.values()]  # still running
    long_t.join()
    assert [o.prompt for o in long_box["result"]] == ["long"]
    assert loop.steps == 40  # the short call's steps were shared with the long one
    loop.close()


def test_solo_work_waits_for_requests_in_flight_and_holds_new_ones_back():
    engine = ScriptedEngine()
    loop = EngineLoop(engine)
    seen: list[int] = []
    first_t, _ = _in_thread(loop.generate, [("first", 10)])
    _wait_for(lambda: engine.steps >= 1)
    solo_t, solo_box = _in_thread(loop.exclusive, lambda: seen.append(len(engine.active)) or "synced")
    _wait_for(lambda: loop._solo or solo_box)
    later_t, later_box = _in_thread(loop.generate, [("later", 1)])
    for t in (first_t, solo_t, later_t):
        t.join()
    assert seen == [0]  # nothing was running when the solo work ran
    assert solo_box["result"] == "synced"
    assert later_box["at"] >= solo_box["at"]  # the later call was admitted only after it
    loop.close()


def test_a_refused_request_fails_its_own_call_only():
    engine = ScriptedEngine()
    loop = EngineLoop(engine)
    other_t, other_box = _in_thread(loop.generate, [("ok", 5)])
    with pytest.raises(ValueError, match="'bad': steps must be positive"):
        loop.generate([("fine", 3), ("bad", 0)])
    other_t.join()
    assert [o.prompt for o in other_box["result"]] == ["ok"]
    assert len(engine.aborted) == 1 and not engine.active  # the refused call's accepted request was aborted
    loop.close()


def test_an_engine_error_reaches_every_caller_in_flight_and_the_loop_goes_on():
    engine = ScriptedEngine()
    loop = EngineLoop(engine)
    a_t, a_box = _in_thread(loop.generate, [("a", 20)])
    b_t, b_box = _in_thread(loop.generate, [("b", 20)])
    _wait_for(lambda: len(engine.active) == 2)
    engine.fail_next_step = RuntimeError("engine died")
    a_t.join()
    b_t.join()
    assert str(a_box["error"]) == str(b_box["error"]) == "engine died"
    engine.active.clear()
    assert [o.prompt for o in loop.generate([("c", 1)])] == ["c"]
    loop.close()


def test_close_fails_waiting_callers_and_refuses_new_ones():
    engine = ScriptedEngine(step_s=0.05)
    loop = EngineLoop(engine)
    t, box = _in_thread(loop.generate, [("slow", 1000)])
    _wait_for(lambda: engine.active)
    loop.close()
    t.join()
    assert "closed" in str(box["error"])
    with pytest.raises(RuntimeError, match="closed"):
        loop.generate([("x", 1)])
    loop.close()  # a second close does nothing
