"""ROLL's Sokoban (`sokoban`, `SimpleSokoban`, ...): `<answer>Up</answer>` actions and gym-sokoban rewards.

Rewards (gym-sokoban): -0.1 every step, +1 when a box lands on a target, -1 when one leaves it, +10 when
the last box lands (the episode then ends, terminated). A reply without a recognised action is a no-op
that still costs the -0.1 step plus `format_penalty`, and play goes on. At `max_steps` the episode ends
with terminated=True and truncated=True, as ROLL's env and env manager report it.
Every level is solvable within min(max_steps, search_depth) moves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gem_envs.core import Env, StepResult
from gem_envs.envs._common import check, check_int
from gem_envs.envs.sokoban.board import BLOCKED, Board
from gem_envs.envs.sokoban.config import room_fits, room_shape
from gem_envs.envs.sokoban.generator import generate_level
from gem_envs.envs.sokoban.level import DIRECTIONS
from gem_envs.envs.sokoban.solver import solve
from gem_envs.errors import EnvConfigError, ResetNeeded
from gem_envs.parsing import match_action

GRID_LOOKUP = {0: "#", 1: "_", 2: "O", 3: "√", 4: "X", 5: "P", 6: "S"}
GRID_VOCAB = {
    "#": "wall",
    "_": "empty",
    "O": "target",
    "√": "box on target",
    "X": "box",
    "P": "player",
    "S": "player on target",
}
# gym-sokoban's action ids 1..4 are pushes up, down, left, right; ROLL names them with this lookup.
ACTION_LOOKUP = {1: "Up", 2: "Down", 3: "Left", 4: "Right"}
ENV_INSTRUCTION = (
    "You are solving the Sokoban puzzle. "
    "You are the player and you need to push all boxes to targets. "
    "When you are right next to a box, you can push it by moving in the same direction. "
    "You cannot push a box through a wall, and you cannot pull a box. "
    "The answer must be one of action in a turn, format is <answer>Right</answer>."
)
SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>")  # chat-template tokens ROLL strips before parsing

STEP_PENALTY = -0.1
BOX_ON_TARGET_REWARD = 1.0
BOX_OFF_TARGET_PENALTY = -1.0
SOLVED_REWARD = 10.0
METRICS_AGG_MODE = {
    "action_is_effective": "mean",
    "action_is_valid": "mean",
    "success": "last",
    "format_penalty": "mean",
}


class RollSokobanEnv(Env):
    """ROLL's SokobanEnv: the observation is the rendered grid; `info["env_instruction"]` the rules."""

    def __init__(
        self,
        dim_room: tuple[int, int] = (10, 10),
        num_boxes: int = 4,
        max_steps: int = 20,
        search_depth: int = 300,
        grid_lookup: Mapping[int, str] | None = None,
        grid_vocab: Mapping[str, str] | None = None,
        action_lookup: Mapping[int, str] | None = None,
        action_pattern: str = r"<answer>(.*?)</answer>",
        format_penalty: float = 0.0,
        env_instruction: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.dim_room = room_shape("dim_room", dim_room)
        check_int("num_boxes", num_boxes, 1)
        check_int("max_steps", max_steps, 1)
        check_int("search_depth", search_depth, 1)
        self.num_boxes, self.max_steps, self.search_depth = num_boxes, max_steps, search_depth
        # Levels come from at most this many reverse moves, so they are solvable within the step limit.
        self.move_budget = min(max_steps, search_depth)
        budget_field = "max_steps" if max_steps <= search_depth else "search_depth"
        room_fits("dim_room", self.dim_room, num_boxes, budget_field, self.move_budget)
        self.grid_lookup = _grid_lookup(GRID_LOOKUP if grid_lookup is None else grid_lookup)
        self.grid_vocab = _str_mapping("grid_vocab", GRID_VOCAB if grid_vocab is None else grid_vocab)
        self.action_lookup = _action_lookup(ACTION_LOOKUP if action_lookup is None else action_lookup)
        self._action_ids = {name.lower(): action_id for action_id, name in self.action_lookup.items()}
        try:
            self.action_pattern = re.compile(action_pattern, re.DOTALL)
        except (re.error, TypeError) as exc:
            raise EnvConfigError(f"action_pattern: is not a valid regular expression: {exc}") from exc
        check(
            isinstance(format_penalty, (int, float)) and not isinstance(format_penalty, bool),
            "format_penalty",
            f"must be a number, got {format_penalty!r}",
        )
        self.format_penalty = float(format_penalty)
        check(
            env_instruction is None or isinstance(env_instruction, str),
            "env_instruction",
            "must be a string or None",
        )
        self.env_instruction = ENV_INSTRUCTION if env_instruction is None else env_instruction
        self.step_count = 0

    def _reset(self) -> tuple[str, dict[str, Any]]:
        rows, cols = self.dim_room
        self.level = generate_level(self.rng, rows, cols, self.num_boxes, self.move_budget)
        self.board = Board(self.level, [self.grid_lookup[code] for code in range(7)], "")
        self.step_count = 0
        grid = self.board.text()
        return grid, {"env_instruction": self.instructions(), "suffix": _suffix(grid)}

    def instructions(self) -> str:
        """ROLL's `get_instructions`: the rules, the symbol legend from grid_vocab, the action names."""
        legend = ", ".join(f"{symbol}: {meaning}" for symbol, meaning in self.grid_vocab.items())
        actions = ", ".join(self.action_lookup.values())
        return (
            f"{self.env_instruction}\nThe meaning of each symbol in the state is:\n{legend}\n"
            f"Your available actions are:\n{actions}"
        )

    def _step(self, action: str) -> StepResult:
        self.step_count = turn = self.step_count + 1
        for token in SPECIAL_TOKENS:
            action = action.replace(token, "")
        content = match_action(action.strip(), self.action_pattern)
        action_id = None if content is None else self._action_ids.get(content.lower())
        board = self.board
        reward = STEP_PENALTY
        if action_id is None:
            reward += self.format_penalty
            effective = False
            description = f"At turn {turn}, You did not provide a valid action."
        else:
            before = board.boxes_on_target
            effective = board.move(action_id - 1) != BLOCKED
            if board.boxes_on_target > before:
                reward += BOX_ON_TARGET_REWARD
            elif board.boxes_on_target < before:
                reward += BOX_OFF_TARGET_PENALTY
            if board.solved:
                reward += SOLVED_REWARD
            state = "moved" if effective else "tried to move"
            outcome = "which is effective" if effective else "which is not effective yet"
            description = f"At turn {turn}, you {state} {content}, {outcome}."
        solved = board.solved
        grid = board.text()
        info = {
            "metrics": {
                "action_is_effective": effective,
                "action_is_valid": action_id is not None,
                "success": solved,
                "format_penalty": 0.0 if action_id is not None else self.format_penalty,
            },
            "metrics_agg_mode": dict(METRICS_AGG_MODE),
            "action_desc": description,
            "action_content": content or "",
            "suffix": _suffix(grid),
        }
        limit = turn >= self.max_steps
        return grid, reward, solved or limit, limit and not solved, info

    def sample_random_action(self) -> str:
        """A random action name in `<answer>` tags (ROLL returns the bare name, which its pattern rejects)."""
        return f"<answer>{self.action_rng.choice(list(self.action_lookup.values()))}</answer>"

    def solution(self) -> list[str]:
        """`<answer>` actions that solve the current position in the fewest moves; [] if the steps left cannot."""
        if not self.episode_running:
            raise ResetNeeded(f"{self.env_id}: solution() needs a running episode; call reset() first")
        moves = solve(self.board.to_level(), self.max_steps - self.step_count)
        names = {direction: self.action_lookup[d + 1] for d, direction in enumerate(DIRECTIONS)}
        return [f"<answer>{names[move]}</answer>" for move in moves or ()]


def _suffix(grid: str) -> str:
    """ROLL's task suffix (for prompt templates that use `{suffix}`)."""
    return f"Here is the current state of the Sokoban puzzle:\n{grid}\n"


def _str_mapping(field: str, value: Any) -> dict[Any, str]:
    check(isinstance(value, Mapping), field, f"must be a mapping, got {type(value).__name__}")
    check(
        all(isinstance(text, str) and text for text in value.values()),
        field,
        "values must be non-empty strings",
    )
    return dict(value)


def _int_keys(field: str, value: Any, keys: range) -> dict[int, str]:
    """`value` with int keys (YAML/JSON may give "0"), which must be exactly `keys`."""
    mapping = _str_mapping(field, value)
    try:
        converted = {int(key): text for key, text in mapping.items()}
    except (TypeError, ValueError):
        converted = {}
    check(set(converted) == set(keys), field, f"keys must be exactly {list(keys)}, got {list(mapping)}")
    return converted


def _grid_lookup(value: Any) -> dict[int, str]:
    """Room code (0 wall, 1 floor, 2 target, 3 box on target, 4 box, 5 player, 6 player on target) -> symbol."""
    return _int_keys("grid_lookup", value, range(7))


def _action_lookup(value: Any) -> dict[int, str]:
    """Action id (1 up, 2 down, 3 left, 4 right) -> the name the model answers with (matched case-insensitively)."""
    lookup = _int_keys("action_lookup", value, range(1, 5))
    names = [name.lower() for name in lookup.values()]
    check(
        len(set(names)) == 4, "action_lookup", f"names must differ ignoring case, got {list(lookup.values())}"
    )
    return lookup
