"""2048 (GEM): slide and merge tiles to reach a target tile, answering `\\boxed{up|down|left|right}`."""

from __future__ import annotations

import math
import random

from gem_envs.envs._common import (
    INVALID_ACTION_REWARD,
    STEP_REWARD,
    BoxedGame,
    check,
    check_int,
    random_preset,
)

Board = list[list[int]]

DIRECTIONS = ("up", "down", "left", "right")
# GEM's random preset: (target_tile, max_turns).
_RANDOM_PRESETS = ((16, 20), (32, 30), (64, 50))


def slide_line(line: list[int]) -> list[int]:
    """Slide a line towards index 0, merging each equal pair once (2 2 2 2 -> 4 4 0 0)."""
    tiles = [t for t in line if t]
    merged: list[int] = []
    i = 0
    while i < len(tiles):
        if i + 1 < len(tiles) and tiles[i] == tiles[i + 1]:
            merged.append(2 * tiles[i])
            i += 2
        else:
            merged.append(tiles[i])
            i += 1
    return merged + [0] * (len(line) - len(merged))


def slide(board: Board, direction: str) -> Board:
    """The board after moving every tile towards `direction`."""
    n = len(board)
    # Each line lists the cells from the edge tiles move towards, inwards.
    if direction in ("left", "right"):
        lines = [[(r, c) for c in range(n)] for r in range(n)]
    else:
        lines = [[(r, c) for r in range(n)] for c in range(n)]
    if direction in ("right", "down"):
        lines = [line[::-1] for line in lines]
    result = [[0] * n for _ in range(n)]
    for line in lines:
        for (r, c), value in zip(line, slide_line([board[r][c] for r, c in line]), strict=True):
            result[r][c] = value
    return result


class Game2048Env(BoxedGame):
    """GEM's rules: a move that changes nothing is invalid (0.0); rewards track log2 of the largest tile.

    Each new largest tile (capped at the target) pays its log2 gain over log2(target) - log2(first largest
    tile), so reaching the target sums to 1. A win or a board with no move left ends the episode.
    """

    format_error_text = (
        "At turn {turn}, you did not provide a valid move. Please use \\boxed{{direction}} format."
    )
    max_turns_text = "You have reached the maximum number of turns ({max_turns})."

    def __init__(
        self,
        target_tile: int | None = 2048,
        max_turns: int | None = 1000,
        board_size: int = 4,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        check_int("board_size", board_size, 2)
        self.is_random = random_preset(target_tile=target_tile, max_turns=max_turns)
        if not self.is_random:
            check_int("target_tile", target_tile, 8)
            check(
                target_tile & (target_tile - 1) == 0,
                "target_tile",
                f"must be a power of two, got {target_tile}",
            )
            check_int("max_turns", max_turns, 1)
        self.target_tile, self.max_turns, self.board_size = target_tile, max_turns, board_size

    def _sample_preset(self) -> None:
        self.target_tile, self.max_turns = self.rng.choice(_RANDOM_PRESETS)

    def _new_game(self) -> None:
        self.board = [[0] * self.board_size for _ in range(self.board_size)]
        self._add_tile()
        self._add_tile()
        self.best_tile = self.first_best_tile = max(map(max, self.board))

    def _add_tile(self) -> None:
        empty = [(r, c) for r, row in enumerate(self.board) for c, value in enumerate(row) if not value]
        if empty:
            r, c = self.rng.choice(empty)
            self.board[r][c] = 2 if self.rng.random() < 0.9 else 4

    def _instructions(self) -> str:
        return (
            "You are playing 2048.\n"
            f"Your goal is to reach the {self.target_tile} tile by sliding and merging tiles.\n"
            f"You have {self.max_turns} turns maximum.\n\n"
            "Rules:\n"
            "- When two tiles with the same number touch, they merge into one tile with double the value.\n"
            "- After each move, a new tile (2 or 4) appears in a random empty spot.\n"
            "- You can move tiles in four directions: 'up', 'down', 'left', 'right'.\n\n"
            "To submit your move, type the direction in \\boxed{...}.\n"
            f"For example: {self._random_action(self.rng)}\n\n"
        )

    def _suffix(self) -> str:
        return f"Current board:\n{self.render()}\nEnter your move."

    def render(self) -> str:
        """The board as GEM draws it: four-wide right-aligned tiles, '.' for empty."""
        return "\n".join(" ".join(f"{t:4d}" if t else "   ." for t in row) for row in self.board)

    def _parse(self, boxed: str) -> str | None:
        direction = boxed.lower()
        return direction if direction in DIRECTIONS else None

    def _play(self, direction: str) -> tuple[str, float, bool]:
        turn = self.turn_count
        moved = slide(self.board, direction)
        if moved == self.board:
            text = f"At turn {turn}, you chose move '{direction}' which doesn't change the board state. Try a different direction."
            return text, INVALID_ACTION_REWARD, False
        self.board = moved
        reward = self._progress_reward()
        self._add_tile()
        if self.best_tile >= self.target_tile:
            return f"Congratulations! You reached the {self.target_tile} tile in {turn} turns!", reward, True
        if all(slide(self.board, d) == self.board for d in DIRECTIONS):
            return "Game over! No more moves possible.", reward, True
        return f"At turn {turn}, you moved {direction}", reward, False

    def _progress_reward(self) -> float:
        best = min(max(map(max, self.board)), self.target_tile)
        if best <= self.best_tile:
            return STEP_REWARD
        gain = math.log2(best) - math.log2(self.best_tile)
        self.best_tile = best
        return gain / (math.log2(self.target_tile) - math.log2(self.first_best_tile))

    def _random_action(self, rng: random.Random) -> str:
        return f"\\boxed{{{rng.choice(DIRECTIONS)}}}"
