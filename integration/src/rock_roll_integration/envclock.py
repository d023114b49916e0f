"""How long the rollout thread waits on environments, measured inside roll's own env manager.

roll's `TrajEnvManager` runs every env `reset`/`step` through its `EnvCaller`, which counts the calls and
times each blocking wait on them; an `EnvClock` sums those counters over the managers attached to it. The
time is what the trainer loses to envs (calls in flight together are counted once, as wall time).
"""

from __future__ import annotations

from dataclasses import dataclass

from roll.agentic.env_manager import TrajEnvManager


@dataclass(frozen=True)
class EnvCounts:
    """A snapshot: env steps and resets (fresh-env starts included) submitted, seconds blocked on them."""

    steps: int = 0
    resets: int = 0
    wait_s: float = 0.0

    def __sub__(self, other: EnvCounts) -> EnvCounts:
        return EnvCounts(self.steps - other.steps, self.resets - other.resets, self.wait_s - other.wait_s)


class EnvClock:
    """Counts env calls and the wall time spent blocked on them, over every manager it is attached to."""

    def __init__(self) -> None:
        self._managers: list[TrajEnvManager] = []

    def attach(self, manager: TrajEnvManager) -> None:
        """Count `manager`'s env calls too (idempotent per manager)."""
        if all(m is not manager for m in self._managers):
            self._managers.append(manager)

    def snapshot(self) -> EnvCounts:
        calls = [m.calls for m in self._managers]
        return EnvCounts(
            sum(c.counts["step"] for c in calls),
            sum(c.counts["reset"] + c.counts["start"] for c in calls),
            sum(c.wait_s for c in calls),
        )
