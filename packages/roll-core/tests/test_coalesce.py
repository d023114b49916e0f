"""Concurrent generation calls share engine batches (roll.strategies.coalesce; what the vllm strategy uses)."""

from __future__ import annotations

import threading
import time

import pytest

from roll.strategies.coalesce import CallCoalescer


def test_calls_that_arrive_while_a_batch_runs_join_the_next_one_and_get_their_own_results():
    batches: list[list[int]] = []
    release = threading.Event()

    def run(items: list[int]) -> list[int]:
        batches.append(list(items))
        if len(batches) == 1:
            release.wait(30)  # the engine is busy with the first caller's batch
        return [x * 10 for x in items]

    queue = CallCoalescer(run)
    results: dict[int, list[int]] = {}
    threads = [
        threading.Thread(target=lambda k=k: results.__setitem__(k, queue([k, k + 100]))) for k in range(8)
    ]
    threads[0].start()
    while not batches:
        time.sleep(0.001)
    for t in threads[1:]:
        t.start()
    deadline = time.monotonic() + 30
    while queue.queued < 7 and time.monotonic() < deadline:
        time.sleep(0.001)
    release.set()
    for t in threads:
        t.join(30)
    queue.close()
    assert results == {k: [k * 10, (k + 100) * 10] for k in range(8)}
    assert (
        len(batches) == 2
        and batches[0] == [0, 100]
        and sorted(batches[1]) == sorted(x for k in range(1, 8) for x in (k, k + 100))
    )


def test_an_engine_error_reaches_every_caller_of_its_batch_and_the_queue_keeps_serving():
    calls = {"n": 0}

    def run(items: list[int]) -> list[int]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("engine died")
        return items

    queue = CallCoalescer(run)
    with pytest.raises(ValueError, match="engine died"):
        queue([1])
    assert queue([2, 3]) == [2, 3]
    queue.close()
    with pytest.raises(RuntimeError, match="closed"):
        queue([4])
