"""SyncVectorEnv: the envs stepped one after another in this thread."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gem_envs.vector.base import AutoresetMode, EnvFactory, EnvSlot, Transition, VectorEnv


class SyncVectorEnv(VectorEnv):
    def __init__(
        self, env_fns: Sequence[EnvFactory], autoreset_mode: AutoresetMode = AutoresetMode.SAME_STEP
    ):
        self.slots = [EnvSlot(fn(), AutoresetMode(autoreset_mode)) for fn in env_fns]
        self.num_envs = len(self.slots)

    @property
    def envs(self):
        return [slot.env for slot in self.slots]

    def _reset_all(self, seeds: list[int | None]) -> list[tuple[str, dict[str, Any]]]:
        return [slot.reset(seed) for slot, seed in zip(self.slots, seeds, strict=True)]

    def _step_some(self, actions: dict[int, str]) -> list[Transition]:
        return [self.slots[i].step(action) for i, action in actions.items()]

    def close(self) -> None:
        for slot in self.slots:
            slot.env.close()
