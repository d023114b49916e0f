"""`roll:LetterEcho-v0`: a single-turn task a random-init tiny model can learn with RL from scratch.

The observation asks for one letter drawn (by seed) from `letters` (shown `repeat` times, so that a
freshly initialised model's last hidden state depends on it); the reward is 1 when the reply's
first non-blank character is that letter, else 0. A byte-level model starts at about 1/259 per letter.
"""

from __future__ import annotations

from typing import Any

from gem_envs.core import Env, StepResult

ENV_ID = "roll:LetterEcho-v0"


class LetterEchoEnv(Env):
    def __init__(self, letters: str = "ab", repeat: int = 8, seed: int | None = None) -> None:
        super().__init__(seed)
        if not letters or not isinstance(letters, str):
            raise ValueError(f"letters must be a non-empty string, got {letters!r}")
        self.letters = letters
        self.repeat = max(1, int(repeat))
        self.target = letters[0]

    def _reset(self) -> tuple[str, dict[str, Any]]:
        self.target = self.rng.choice(self.letters)
        return f"Reply with the letter {self.target}: " + " ".join(self.target * self.repeat), {
            "env_instruction": ""
        }

    def _step(self, action: str) -> StepResult:
        first = action.strip()[:1]
        ok = first == self.target
        info = {"metrics": {"success": float(ok), "action_is_valid": float(first in self.letters)}}
        return "", 1.0 if ok else 0.0, True, False, info

    def sample_random_action(self) -> str:
        return self.action_rng.choice(self.letters)


def register_toy_envs() -> None:
    import gem_envs

    if ENV_ID not in gem_envs.list_envs():
        gem_envs.register(
            ENV_ID, LetterEchoEnv, description="single-turn letter echo (learnable from scratch)"
        )
