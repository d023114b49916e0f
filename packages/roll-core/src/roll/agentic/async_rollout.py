"""Asynchronous generation (ROLL Flash-style `async_generation_ratio`): batches for later steps are generated
in a background thread while the trainer works on the current one.

Staleness is bounded by **admission control**, never by discarding finished rollouts: the batch of step k
may start only when `k − policy_version ≤ ratio` (the inference worker holds the weights after
`policy_version` train steps) and `k ≤ requested + ratio` (the trainer has reached step `k − ratio`). Weights
only change between calls to the env manager (`gen_lock`), so every trajectory is generated with one policy
version, recorded on it (`Trajectory.policy_version`), and `k − version ≤ ratio` holds for every trajectory
trained at step k. With ratio 0 a batch starts only when the trainer asks for it, after the weights of the
previous step are synced: the same order of work as the synchronous loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from roll.agentic.env_manager import Trajectory
from roll.agentic.scheduler import RolloutScheduler, RolloutTimeout


class AsyncRollout:
    """Produces `scheduler.get_batch(batch_size)` for steps start_step, start_step+1, … ahead of the trainer."""

    def __init__(
        self,
        scheduler: RolloutScheduler,
        batch_size: int,
        ratio: int,
        start_step: int,
        end_step: int,
        version_fn: Callable[[], int],
        timeout_s: float,
    ) -> None:
        if ratio < 0:
            raise ValueError(f"async_generation_ratio must be >= 0, got {ratio}")
        self.scheduler, self.batch_size, self.ratio = scheduler, batch_size, int(ratio)
        self.end_step, self.version_fn, self.timeout_s = end_step, version_fn, timeout_s
        self.cond = threading.Condition()
        self.next_step = start_step  # the next batch the producer will generate
        self.requested = start_step - 1  # the latest step the trainer has asked for
        self.ready: dict[int, tuple[list[Trajectory], dict[str, float]]] = {}
        self.snapshots: dict[int, dict[str, Any]] = {}  # scheduler state before batch k
        self.error: BaseException | None = None
        self.stopped = False
        self.thread: threading.Thread | None = None

    def admissible(self, step: int) -> bool:
        return (
            step < self.end_step
            and step <= self.requested + self.ratio
            and step - self.version_fn() <= self.ratio
        )

    def notify(self) -> None:
        """Wake the producer (after a weight sync changed the policy version)."""
        with self.cond:
            self.cond.notify_all()

    def _loop(self) -> None:
        try:
            while True:
                with self.cond:
                    step = self.next_step
                    while not self.stopped and not self.admissible(step):
                        self.cond.wait()
                    if self.stopped:
                        return
                    self.snapshots[step] = self.scheduler.state_dict()
                batch = self.scheduler.get_batch(self.batch_size, stop=lambda: self.stopped)
                with self.cond:
                    if self.stopped:
                        return
                    self.ready[step] = batch
                    self.next_step = step + 1
                    self.cond.notify_all()
        except BaseException as exc:  # handed to the trainer by get()
            with self.cond:
                self.error = exc
                self.cond.notify_all()

    def get(self, step: int) -> tuple[list[Trajectory], dict[str, float]]:
        """The batch of `step` (admits generation up to step + ratio); waits at most timeout_s."""
        deadline = time.monotonic() + self.timeout_s
        with self.cond:
            if step != self.next_step and step not in self.ready:
                raise RuntimeError(f"async rollout: step {step} requested, next batch is {self.next_step}")
            self.requested = max(self.requested, step)
            self.cond.notify_all()
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="roll-async-rollout", daemon=True)
                self.thread.start()
            while step not in self.ready:
                if self.error is not None:
                    raise self.error
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RolloutTimeout(
                        f"async rollout: batch of step {step} not ready after {self.timeout_s}s "
                        "(rollout_timeout_s); envs or generation are too slow or failing"
                    )
                self.cond.wait(remaining)
            for k in [k for k in self.snapshots if k <= step]:
                del self.snapshots[k]
            return self.ready.pop(step)

    def scheduler_state(self, next_step: int) -> dict[str, Any]:
        """The train scheduler's state before the batch of `next_step` (for checkpoints taken after a step)."""
        with self.cond:
            if next_step in self.snapshots:
                return self.snapshots[next_step]
            return self.scheduler.state_dict()  # that batch has not started: the scheduler is idle

    def close(self, timeout_s: float = 600.0) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        if self.thread is not None:
            self.thread.join(timeout_s)
