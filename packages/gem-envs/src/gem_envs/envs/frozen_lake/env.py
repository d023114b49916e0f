"""FrozenLakeEnv: ROLL's FrozenLake (gymnasium rules, `<answer>` actions, a format penalty that does not end play)."""

from __future__ import annotations

import random
import re
from typing import Any

from gem_envs.core import Env, StepResult
from gem_envs.envs._common import check, check_int
from gem_envs.envs.frozen_lake.maps import GOAL, HOLE, RIGHT, move, random_map, shortest_path
from gem_envs.errors import EnvConfigError
from gem_envs.parsing import match_action

ACTION_NAMES = ("Left", "Down", "Right", "Up")  # gymnasium's action order 0..3
SYMBOLS = {
    "P": "player",
    "_": "empty",
    "O": "hole",
    "G": "goal",
    "X": "player in hole",
    "√": "player on goal",
}
_CELL_TEXT = {"S": "_", "F": "_", "H": "O", "G": "G"}
_PLAYER_TEXT = {"S": "P", "F": "P", "H": "X", "G": "√"}
_ACTION_INDEX = {name.casefold(): index for index, name in enumerate(ACTION_NAMES)}
_SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>")  # chat-template tokens ROLL strips before matching
_NUMBER = (int, float)


def _check_config(
    size: int, p: float, is_slippery: bool, map_seed: int | None, max_steps: int, format_penalty: float
) -> None:
    """Raise EnvConfigError naming the first constructor argument FrozenLake cannot use."""
    check_int("size", size, 2)
    check(
        isinstance(p, _NUMBER) and not isinstance(p, bool) and 0 < p <= 1,
        "p",
        f"must be in (0, 1], got {p!r}",
    )
    check(isinstance(is_slippery, bool), "is_slippery", f"must be a bool, got {is_slippery!r}")
    check(
        map_seed is None or isinstance(map_seed, int), "map_seed", f"must be an int or None, got {map_seed!r}"
    )
    check_int("max_steps", max_steps, 1)
    shortest = 2 * (size - 1)
    check(
        max_steps >= shortest,
        "max_steps",
        f"{max_steps} is below {shortest}, the shortest path on a {size}x{size} map",
    )
    check(isinstance(format_penalty, _NUMBER), "format_penalty", f"must be a number, got {format_penalty!r}")


class FrozenLakeEnv(Env):
    """Walk from the top-left to the goal at the bottom-right without falling into a hole.

    Each episode draws a new map from `self.rng` unless `map_seed` fixes one; every map has a safe path of
    at most `max_steps` moves. Reward 1.0 at the goal; a hole ends the episode with 0. On slippery ice the
    player moves the intended way or either perpendicular way, 1/3 each. A reply without a known action in
    `action_pattern`'s last group pays `format_penalty` and changes nothing; every step counts towards
    `max_steps`.
    """

    def __init__(
        self,
        size: int = 4,
        p: float = 0.8,
        is_slippery: bool = True,
        map_seed: int | None = None,
        max_steps: int = 20,
        format_penalty: float = 0.0,
        action_pattern: str = r"<answer>(.*?)</answer>",
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        _check_config(size, p, is_slippery, map_seed, max_steps, format_penalty)
        try:
            self.pattern = re.compile(action_pattern, re.DOTALL)
        except (re.error, TypeError) as exc:
            raise EnvConfigError(
                f"action_pattern: not a regular expression ({exc}): {action_pattern!r}"
            ) from exc
        self.size, self.p, self.is_slippery, self.map_seed = size, p, is_slippery, map_seed
        self.stochastic_transitions = is_slippery
        self.max_steps, self.format_penalty = max_steps, float(format_penalty)
        self.action_texts = [self._action_text(name) for name in ACTION_NAMES]
        self.fixed_map = None if map_seed is None else random_map(size, p, max_steps, random.Random(map_seed))
        self.instruction = self._instruction()

    def _action_text(self, name: str) -> str:
        """`<answer>Name</answer>`, with a `<think>` part first when `action_pattern` asks for one."""
        answer = f"<answer>{name}</answer>"
        return answer if self._parse(answer) is not None else f"<think>I move {name}.</think>{answer}"

    def _instruction(self) -> str:
        slippery = (
            " You may move in an unintended direction because the ice is slippery."
            if self.is_slippery
            else ""
        )
        return (
            f"You are solving the FrozenLake puzzle. Avoid the holes and go to the goal.{slippery} "
            f"Give exactly one action per turn, in the format {self.action_texts[RIGHT]}"
            "\nThe meaning of each symbol in the state is:\n"
            + ", ".join(f"{symbol}: {meaning}" for symbol, meaning in SYMBOLS.items())
            + "\nYour available actions are:\n"
            + ", ".join(ACTION_NAMES)
        )

    def _reset(self) -> tuple[str, dict[str, Any]]:
        self.grid = self.fixed_map or random_map(self.size, self.p, self.max_steps, self.rng)
        self.position = (0, 0)
        self.step_count = 0
        return self.render(), {"env_instruction": self.instruction, "suffix": self._suffix()}

    def _step(self, action: str) -> StepResult:
        self.step_count += 1
        intended = self._parse(action)
        before = self.position
        if intended is not None:
            # gymnasium's slippery ice: the intended direction or one of its two perpendiculars.
            actual = (intended + self.rng.choice((-1, 0, 1))) % 4 if self.is_slippery else intended
            self.position = move(self.grid, before, actual)
        penalty = self.format_penalty if intended is None else 0.0
        reward = penalty if intended is None else float(self.cell == GOAL)
        terminated = self.cell in (GOAL, HOLE)  # an unparsable action leaves the player on frozen ice
        truncated = not terminated and self.step_count >= self.max_steps
        metrics = {
            "action_is_effective": self.position != before,
            "action_is_valid": intended is not None,
            "success": self.cell == GOAL,
            "format_penalty": penalty,
        }
        return self.render(), reward, terminated, truncated, {"metrics": metrics, "suffix": self._suffix()}

    def _parse(self, text: str) -> int | None:
        for token in _SPECIAL_TOKENS:
            text = text.replace(token, "")
        content = match_action(text, self.pattern)
        return None if content is None else _ACTION_INDEX.get(content.casefold())

    def _suffix(self) -> str:
        left = self.max_steps - self.step_count
        return f"You have {left} step(s) left. Give your next action, for example {self.action_texts[RIGHT]}."

    @property
    def cell(self) -> str:
        """The map letter under the player."""
        return self.grid[self.position[0]][self.position[1]]

    def render(self) -> str:
        """One text row per map row: P player, _ frozen, O hole, G goal, X player in a hole, √ player on the goal."""
        rows = []
        for r, row in enumerate(self.grid):
            cells = [
                (_PLAYER_TEXT if (r, c) == self.position else _CELL_TEXT)[letter]
                for c, letter in enumerate(row)
            ]
            rows.append("".join(cells))
        return "\n".join(rows)

    def solution(self) -> list[str]:
        """Actions for a shortest safe path from the player to the goal (the intended moves on slippery ice)."""
        path = shortest_path(self.grid, self.position) or []
        return [self.action_texts[action] for action in path]

    def sample_random_action(self) -> str:
        return self.action_rng.choice(self.action_texts)
