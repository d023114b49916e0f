"""Admission control of the asynchronous rollout producer, with a fake scheduler (no model)."""

from __future__ import annotations

import threading
import time

import pytest

from roll.agentic.async_rollout import AsyncRollout
from roll.agentic.scheduler import RolloutTimeout


class FakeScheduler:
    def __init__(self, version_fn, ratio_view) -> None:
        self.version_fn, self.view = version_fn, ratio_view
        self.calls: list[tuple[int, int, int]] = []  # (batch index, policy version, requested)
        self.n = 0
        self.lock = threading.Lock()

    def state_dict(self):
        return {"n": self.n}

    def get_batch(self, batch_size, stop=None):
        with self.lock:
            self.calls.append((self.n, self.version_fn(), self.view().requested))
            self.n += 1
        return [self.n - 1], {}


def _wait_for(pred, timeout=20.0):
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.01)


@pytest.mark.parametrize("ratio", [0, 1, 2])
def test_admission_bounds_staleness_and_prefetch(ratio):
    version = [0]
    holder: list[AsyncRollout] = []
    sched = FakeScheduler(lambda: version[0], lambda: holder[0])
    ar = AsyncRollout(sched, 4, ratio, 0, 8, lambda: version[0], timeout_s=30)
    holder.append(ar)
    try:
        for step in range(8):
            batch, _ = ar.get(step)
            assert batch == [step]
            # the producer runs ahead to step + ratio while this step "trains", never further
            _wait_for(lambda s=step: len(sched.calls) >= min(8, s + 1 + ratio))
            time.sleep(0.05)
            assert len(sched.calls) == min(8, step + 1 + ratio)
            version[0] = step + 1  # weights of this step synced to the inference worker
            ar.notify()
    finally:
        ar.close()
    for k, v, requested in sched.calls:
        assert k - v <= ratio and k <= requested + ratio
    assert [k for k, _, _ in sched.calls] == list(range(8))
    if ratio:
        assert max(k - v for k, v, _ in sched.calls) == ratio  # it did generate ahead


def test_producer_errors_reach_the_trainer_and_waits_time_out():
    class Broken(FakeScheduler):
        def get_batch(self, batch_size, stop=None):
            raise RuntimeError("env exploded")

    ar = AsyncRollout(Broken(lambda: 0, lambda: None), 4, 1, 0, 4, lambda: 0, timeout_s=30)
    with pytest.raises(RuntimeError, match="env exploded"):
        ar.get(0)
    ar.close()
    stuck = AsyncRollout(FakeScheduler(lambda: 0, lambda: stuck), 4, 0, 0, 4, lambda: -5, timeout_s=0.2)
    with pytest.raises(RolloutTimeout, match="rollout_timeout_s"):
        stuck.get(0)  # policy version far behind: never admitted
    stuck.close()
