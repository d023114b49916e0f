"""What every vector env shares: the batch API, partial stepping and autoreset."""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gem_envs.core import Env

EnvFactory = Callable[[], Env]
# One env's step outcome: (observation, reward, terminated, truncated, info).
Transition = tuple[str, float, bool, bool, dict[str, Any]]


class AutoresetMode(str, enum.Enum):
    """SAME_STEP (GEM's default): a finished env is reset inside the step that finished it and returns
    the new episode's observation; the last one is in `info["final_observation"]`.
    NEXT_STEP: the finished env is reset by its next step, whose action is ignored (reward 0)."""

    SAME_STEP = "same_step"
    NEXT_STEP = "next_step"


class EnvSlot:
    """One env plus its autoreset bookkeeping; used in-process and inside worker processes."""

    def __init__(self, env: Env, mode: AutoresetMode) -> None:
        self.env = env
        self.mode = mode
        self.needs_reset = False

    def reset(self, seed: int | None) -> tuple[str, dict[str, Any]]:
        self.needs_reset = False
        return self.env.reset(seed=seed)

    def step(self, action: str) -> Transition:
        if self.needs_reset:
            obs, info = self.reset(None)
            return obs, 0.0, False, False, info
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            if self.mode is AutoresetMode.SAME_STEP:
                new_obs, new_info = self.env.reset()
                new_info = {**new_info, "final_observation": obs, "final_info": info}
                return new_obs, reward, terminated, truncated, new_info
            self.needs_reset = True
        return obs, reward, terminated, truncated, info


def seeds_for(seed: int | Sequence[int | None] | None, num_envs: int) -> list[int | None]:
    """An int seeds env i with seed + i; a list gives one seed per env; None leaves every env's stream."""
    if seed is None:
        return [None] * num_envs
    if isinstance(seed, int):
        return [seed + i for i in range(num_envs)]
    seeds = list(seed)
    if len(seeds) != num_envs:
        raise ValueError(f"seed: got {len(seeds)} seeds for {num_envs} envs")
    return seeds


def normalise_actions(actions: Sequence[str] | Mapping[int, str], num_envs: int) -> dict[int, str]:
    """A list must cover every env; a dict steps only the envs it names, in its key order."""
    if isinstance(actions, Mapping):
        bad = [i for i in actions if not isinstance(i, int) or not 0 <= i < num_envs]
        if bad:
            raise IndexError(f"actions: env indices {bad} out of range 0..{num_envs - 1}")
        return dict(actions)
    if isinstance(actions, str) or len(actions) != num_envs:
        raise ValueError(f"actions: expected a list of {num_envs} strings or a dict {{index: action}}")
    return dict(enumerate(actions))


class VectorEnv(abc.ABC):
    """A batch of envs. `step` returns lists in the order of the envs stepped (all, or the dict's keys)."""

    num_envs: int

    def reset(self, seed: int | Sequence[int | None] | None = None) -> tuple[list[str], list[dict[str, Any]]]:
        results = self._reset_all(seeds_for(seed, self.num_envs))
        return [r[0] for r in results], [r[1] for r in results]

    def step(
        self, actions: Sequence[str] | Mapping[int, str]
    ) -> tuple[list[str], list[float], list[bool], list[bool], list[dict[str, Any]]]:
        by_index = normalise_actions(actions, self.num_envs)
        results = self._step_some(by_index)
        return (
            [r[0] for r in results],
            [r[1] for r in results],
            [r[2] for r in results],
            [r[3] for r in results],
            [r[4] for r in results],
        )

    @abc.abstractmethod
    def _reset_all(self, seeds: list[int | None]) -> list[tuple[str, dict[str, Any]]]: ...

    @abc.abstractmethod
    def _step_some(self, actions: dict[int, str]) -> list[Transition]: ...

    @abc.abstractmethod
    def close(self) -> None:
        """Close every env (and any workers)."""

    def __enter__(self) -> VectorEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
