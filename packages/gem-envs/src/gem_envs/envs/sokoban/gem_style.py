"""GEM's Sokoban (`game:Sokoban-v0-*`): same texts, parsing and rewards as gem-llm 0.1.0, faster levels.

Rewards (GEM's LanguageGameReward): 1.0 for solving; 0.0 for any other move, blocked or not; -0.1 for a
reply without `\\boxed{up|down|left|right}` (a format error), which ends the episode; at the turn limit
the episode ends with the fraction of boxes on targets. Unlike GEM, every level is solvable within
`max_turns` and is generated in about a millisecond (GEM's hard preset: 0.75 s median, 10 s and more
at the tail).
"""

from __future__ import annotations

import re
from typing import Any

from gem_envs.core import Env, StepResult
from gem_envs.envs._common import (
    FORMAT_ERROR_REWARD,
    INVALID_ACTION_REWARD,
    STEP_REWARD,
    SUCCESS_REWARD,
    check_int,
    random_preset,
)
from gem_envs.envs.sokoban.board import BLOCKED, PUSHED, Board
from gem_envs.envs.sokoban.config import room_fits, room_shape
from gem_envs.envs.sokoban.generator import generate_level
from gem_envs.envs.sokoban.level import DIRECTIONS
from gem_envs.envs.sokoban.solver import solve
from gem_envs.errors import ResetNeeded

# GEM matches exactly these four words, case-insensitively, and uses the last match in the reply.
_ACTION = re.compile(r"\\boxed\{(up|down|left|right)\}", re.IGNORECASE)
# The common exact replies skip the regex; their only match is themselves, so the result is the same.
_EXACT = {f"\\boxed{{{name}}}": d for d, name in enumerate(DIRECTIONS)}
_INDEX = {name: d for d, name in enumerate(DIRECTIONS)}
# GEM's glyphs by room code; code 6 (player on a target) shows as P because GEM never renders "S".
_GLYPHS = ("#", "_", "O", "√", "X", "P", "P")
# GEM's -random preset: (dim_room, num_boxes, max_turns), one drawn per reset.
RANDOM_PRESETS = (((6, 6), 2, 20), ((8, 8), 5, 50))

_SOLVED_TEXT = "Congratulations! You have solved the Sokoban puzzle!"
_MAX_TURNS_TEXT = "You have reached the maximum number of turns."


class SokobanEnv(Env):
    """Push every box onto a target within `max_turns` turns; one move per turn in `\\boxed{}`.

    `dim_room`, `num_boxes` and `max_turns` all None selects GEM's random preset on every reset.
    """

    def __init__(
        self,
        dim_room: tuple[int, int] | None = (6, 6),
        num_boxes: int | None = 3,
        max_turns: int | None = 100,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.is_random = random_preset(dim_room=dim_room, num_boxes=num_boxes, max_turns=max_turns)
        if not self.is_random:
            dim_room = room_shape("dim_room", dim_room)
            check_int("num_boxes", num_boxes, 1)
            check_int("max_turns", max_turns, 1)
            room_fits("dim_room", dim_room, num_boxes, "max_turns", max_turns)
        self.dim_room, self.num_boxes, self.max_turns = dim_room, num_boxes, max_turns
        self.action_space = list(DIRECTIONS)
        self.turn_count = 0

    def _reset(self) -> tuple[str, dict[str, Any]]:
        if self.is_random:
            self.dim_room, self.num_boxes, self.max_turns = self.rng.choice(RANDOM_PRESETS)
        rows, cols = self.dim_room
        self.level = generate_level(self.rng, rows, cols, self.num_boxes, self.max_turns)
        self.board = Board(self.level, _GLYPHS, " ")
        self.turn_count = 0
        self._board_text = ""
        example = self.rng.choice(DIRECTIONS)
        return self._instructions(example), {"suffix": self._suffix()}

    def _step(self, action: str) -> StepResult:
        self.turn_count = turn = self.turn_count + 1
        direction = _EXACT.get(action)
        if direction is None:
            matches = _ACTION.findall(action)
            if not matches:
                text = f"At turn {turn}, your submitted action is not valid."
                return text, FORMAT_ERROR_REWARD, True, turn == self.max_turns, {"suffix": self._suffix()}
            direction = _INDEX[matches[-1].lower()]
        board = self.board
        outcome = board.move(direction)
        name = DIRECTIONS[direction]
        if outcome == BLOCKED:
            text = f"At turn {turn}, you cannot move {name} - you would collide with wall or other boxes!"
            reward = INVALID_ACTION_REWARD
        elif outcome == PUSHED:
            if board.solved:
                return _SOLVED_TEXT, SUCCESS_REWARD, True, False, {"suffix": self._suffix()}
            text = f"At turn {turn}, you pushed a box while you moved {name}."
            reward = STEP_REWARD
        else:
            text = f"At turn {turn}, you moved {name}."
            reward = STEP_REWARD
        if turn >= self.max_turns:
            partial = SUCCESS_REWARD * (board.boxes_on_target / self.num_boxes)
            return _MAX_TURNS_TEXT, partial, True, True, {"suffix": self._suffix()}
        return text, reward, False, False, {"suffix": self._suffix()}

    def _suffix(self) -> str:
        """GEM's board block; rebuilt only when the board text changed (a blocked move keeps it)."""
        text = self.board.text()
        if text is not self._board_text:
            self._board_text = text
            self._suffix_text = f"Here is the current board layout:\n{text}\n\nEnter your move."
        return self._suffix_text

    def _instructions(self, example: str) -> str:
        return (
            "You are solving the Sokoban puzzle. You are the player and you need to push all boxes to targets.\n"
            "When you are right next to a box, you can push it by moving in the same direction.\n"
            "You cannot push a box through a wall or another box, and you cannot pull a box.\n"
            f"you have to complete the puzzle within {self.max_turns} turns.\n"
            "On the board, objects are represented as:\n"
            "- The player (you) appears as 'P'\n"
            "- Walls are represented with '#'\n"
            "- Boxes are marked as 'X'\n"
            "- Empty goals are shown with 'O'\n"
            "- Boxes on goals are visualized with '√'\n"
            "- Empty floor is shown as '_'\n\n"
            "To submit your move, type the command in \\boxed{}.\n"
            f"For example: \\boxed{{{example}}} to move {example}.\n"
            "Use logic and deduction to push all boxes onto the target positions!"
        )

    def sample_random_action(self) -> str:
        return f"\\boxed{{{self.action_rng.choice(DIRECTIONS)}}}"

    def solution(self) -> list[str]:
        """Actions that solve the current position in the fewest moves; [] if the turns left cannot."""
        if not self.episode_running:
            raise ResetNeeded(f"{self.env_id}: solution() needs a running episode; call reset() first")
        moves = solve(self.board.to_level(), self.max_turns - self.turn_count)
        return [f"\\boxed{{{move}}}" for move in moves or ()]
