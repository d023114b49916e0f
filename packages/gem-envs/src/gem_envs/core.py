"""The GEM environment protocol: string observations and actions, per-instance randomness.

`reset(seed=None) -> (observation, info)` and
`step(action) -> (observation, reward, terminated, truncated, info)`.

Unlike GEM, an env never touches the process-global `random`/`numpy` state: each instance owns a
`random.Random`, so seeding one env cannot change another and the same seed always replays the
same episode, also when envs run side by side in threads.
"""

from __future__ import annotations

import abc
import random
from typing import Any

from gem_envs.errors import ResetNeeded

StepResult = tuple[str, float, bool, bool, dict[str, Any]]


def _action_seed(seed: int | None) -> str | None:
    """Seed of the action stream: derived, not equal, so a sampled action never mirrors the episode's draws."""
    return None if seed is None else f"action_rng:{seed}"


class Env(abc.ABC):
    """Base class. Subclasses implement `_reset()` and `_step(action)`; the base guards the episode."""

    env_id: str = "<unregistered>"
    entry_point: str = ""
    # True where a step's outcome depends on the RNG (slippery ice): a plan must be redone after each step.
    stochastic_transitions: bool = False

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        # Separate stream for sample_random_action so sampling actions never shifts later episodes.
        self.action_rng = random.Random(_action_seed(seed))
        self._episode_running = False

    def reset(self, seed: int | None = None) -> tuple[str, dict[str, Any]]:
        """Start an episode. With a seed the episode is a pure function of it; without, the next from this env's stream."""
        if seed is not None:
            self.rng.seed(seed)
            self.action_rng.seed(_action_seed(seed))
        observation, info = self._reset()
        self._episode_running = True
        return observation, info

    def step(self, action: str) -> StepResult:
        """Apply one action. Any string is legal: text that does not parse is a format error, not an exception."""
        if not self._episode_running:
            raise ResetNeeded(
                f"{self.env_id}: step() called with no running episode; call reset() first "
                "(the env was never reset, or its last episode already ended)"
            )
        if not isinstance(action, str):
            raise TypeError(f"{self.env_id}: action must be a str, got {type(action).__name__}")
        result = self._step(action)
        if result[2] or result[3]:
            self._episode_running = False
        return result

    @property
    def episode_running(self) -> bool:
        return self._episode_running

    @abc.abstractmethod
    def _reset(self) -> tuple[str, dict[str, Any]]:
        """Build a new episode from `self.rng`."""

    @abc.abstractmethod
    def _step(self, action: str) -> StepResult:
        """Advance the running episode by one action."""

    def sample_random_action(self) -> str:
        """A uniformly random well-formed action (draws from `self.action_rng`)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement sample_random_action")

    def close(self) -> None:
        """Release resources; the base holds none."""

    @property
    def unwrapped(self) -> Env:
        return self

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.env_id}>"
