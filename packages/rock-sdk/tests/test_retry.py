"""The shared retry policy: delays double to the cap, jitter stays within half to all of a delay, and a time
budget is never overrun."""

import time

from rock.retry import backoff_delay, delays_within


def test_backoff_doubles_up_to_the_cap_without_jitter():
    assert [backoff_delay(a, 0.1, jitter=False) for a in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    assert backoff_delay(3, 2.0, cap=float("inf"), jitter=False) == 16.0


def test_jitter_keeps_each_delay_between_half_and_all_of_it():
    samples = [backoff_delay(2, 0.1) for _ in range(500)]
    assert all(0.2 - 1e-12 <= s <= 0.4 + 1e-12 for s in samples)
    assert len(set(samples)) > 1


def test_delays_within_a_budget_never_overrun_it(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("rock.retry.time.monotonic", lambda: clock[0])
    delays = []
    for delay in delays_within(5.0):
        delays.append(delay)
        clock[0] += delay  # the caller sleeps each delay
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6]  # 3.1 s slept; a 2.0 s delay would end at 5.1 s
    assert list(delays_within(0.05)) == []


def test_delays_within_stop_once_the_deadline_passes():
    schedule = delays_within(0.35, base=0.1)
    assert next(schedule) == 0.1
    time.sleep(0.3)  # 0.05 s left: the next delay (0.2 s) would end past it
    assert next(schedule, None) is None
