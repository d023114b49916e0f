"""Minesweeper (GEM): reveal every safe cell and flag every mine, answering `\\boxed{reveal 3 2}` or `\\boxed{flag 0 1}`."""

from __future__ import annotations

import random
import re
from collections import deque

from gem_envs.envs._common import (
    FAIL_REWARD,
    INVALID_ACTION_REWARD,
    STEP_REWARD,
    BoxedGame,
    check,
    check_int,
    random_preset,
)

_MOVE = re.compile(r"([a-zA-Z]+)\s+(\d+)\s+(\d+)")
_MINE = -1
_NEIGHBOURS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]
_WIN_TEXT = "Congratulations! You have successfully cleared the Minesweeper board."


def _action(kind: str, r: int, c: int) -> str:
    return f"\\boxed{{{kind} {r} {c}}}"


class MinesweeperEnv(BoxedGame):
    """GEM's rules: mines are placed on the first reveal, away from its 3x3 block, so it is always safe.

    A reveal pays newly_revealed / safe_cells (a zero floods its neighbours), so clearing the board sums to 1;
    a mine ends the episode with 0. The game is won once every safe cell is revealed and every mine flagged.
    """

    def __init__(
        self,
        rows: int | None = 8,
        cols: int | None = 8,
        num_mines: int | None = 10,
        max_turns: int | None = 20,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.is_random = random_preset(rows=rows, cols=cols, num_mines=num_mines, max_turns=max_turns)
        if not self.is_random:
            check_int("rows", rows, 1)
            check_int("cols", cols, 1)
            check_int("num_mines", num_mines, 1)
            check_int("max_turns", max_turns, 1)
            # The first reveal's 3x3 block (clipped to the board) must stay free of mines.
            room = rows * cols - min(rows, 3) * min(cols, 3)
            check(
                num_mines <= room,
                "num_mines",
                f"{num_mines} mines do not fit a {rows}x{cols} board that keeps a first reveal's 3x3 block free "
                f"(at most {room})",
            )
        self.rows, self.cols, self.num_mines, self.max_turns = rows, cols, num_mines, max_turns

    def _sample_preset(self) -> None:
        size = self.rng.randint(5, 8)
        self.rows = self.cols = size
        self.num_mines = size * size // 5
        self.max_turns = size * size

    def _new_game(self) -> None:
        self.grid = [[0] * self.cols for _ in range(self.rows)]
        self.revealed = [[False] * self.cols for _ in range(self.rows)]
        self.flags = [[False] * self.cols for _ in range(self.rows)]
        self.mines_placed = False

    def _instructions(self) -> str:
        (reveal_r, reveal_c), (flag_r, flag_c) = self._random_cell(self.rng), self._random_cell(self.rng)
        return (
            "You are playing the Minesweeper game.\n"
            "The objective of the game is to reveal all cells that do not contain mines.\n"
            "To make a move, you can either reveal a cell or place a flag on a suspected mine location using one "
            "of the following commands:\n"
            "- 'reveal': Reveal the contents of a specific cell.\n"
            "- 'flag': Place or remove a flag on a specific cell to mark it as a potential mine.\n"
            "To submit your move, type the command followed by the row and column in \\boxed{}.\n"
            "For example:\n"
            f"- {_action('reveal', reveal_r, reveal_c)} to reveal the cell in Row {reveal_r}, Column {reveal_c}.\n"
            f"- {_action('flag', flag_r, flag_c)} to place or remove a flag on the cell in Row {flag_r}, Column {flag_c}.\n"
            "The current board layout is shown below. Cells that are unrevealed are represented by a dot ('.'), "
            "revealed numbers show the count of adjacent mines, and flagged cells are marked with an 'F'.\n"
            "Use logic and deduction to avoid revealing cells with mines!\n"
            "Be mindful not to choose revealed or flagged cells.\n"
        )

    def _suffix(self) -> str:
        return f"Here is the current board layout:\n{self.render()}\nEnter your guess."

    def render(self) -> str:
        """The board as GEM draws it: column header, row numbers, '.' hidden, 'F' flag, digits revealed."""
        lines = ["   " + " ".join(str(c).rjust(2) for c in range(self.cols))]
        for r in range(self.rows):
            cells = [self._cell_text(r, c) for c in range(self.cols)]
            lines.append(f"{r:2} " + "".join(f" {cell} " for cell in cells))
        return "\n".join(lines) + "\n"

    def _cell_text(self, r: int, c: int) -> str:
        if self.revealed[r][c]:
            return "*" if self.grid[r][c] == _MINE else str(self.grid[r][c])
        return "F" if self.flags[r][c] else "."

    def _parse(self, boxed: str) -> tuple[str, int, int] | None:
        match = _MOVE.fullmatch(boxed)
        return (match[1].lower(), int(match[2]), int(match[3])) if match else None

    def _play(self, move: tuple[str, int, int]) -> tuple[str, float, bool]:
        kind, r, c = move
        turn = self.turn_count
        if not (0 <= r < self.rows and 0 <= c < self.cols):
            return (
                f"At turn {turn}, you chose cell ({r}, {c}), which is outside the bounds of the grid.",
                INVALID_ACTION_REWARD,
                False,
            )
        if kind == "reveal":
            return self._reveal(r, c)
        if kind == "flag":
            if self.revealed[r][c]:
                text = f"At turn {turn}, you chose to flag cell ({r}, {c}), which has already been revealed."
                return text, INVALID_ACTION_REWARD, False
            self.flags[r][c] = not self.flags[r][c]
            if self._solved():
                return _WIN_TEXT, STEP_REWARD, True
            text = (
                f"At turn {turn}, you {'added' if self.flags[r][c] else 'removed'} a flag on cell ({r}, {c})."
            )
            return text, STEP_REWARD, False
        text = f"At turn {turn}, you chose an invalid action '{kind}'. Valid actions are 'reveal' or 'flag'."
        return text, INVALID_ACTION_REWARD, False

    def _reveal(self, r: int, c: int) -> tuple[str, float, bool]:
        if self.revealed[r][c] or self.flags[r][c]:
            state = "revealed" if self.revealed[r][c] else "flagged"
            text = f"At turn {self.turn_count}, you chose to reveal cell ({r}, {c}), which has already been {state}."
            return text, INVALID_ACTION_REWARD, False
        if not self.mines_placed:
            self._place_mines(r, c)
        if self.grid[r][c] == _MINE:
            self.revealed[r][c] = True
            return f"Game over! You hit a mine at ({r}, {c})", FAIL_REWARD, True
        reward = self._flood(r, c) / (self.rows * self.cols - self.num_mines)
        if self._solved():
            return _WIN_TEXT, reward, True
        return f"At turn {self.turn_count}, you successfully revealed cell ({r}, {c}).", reward, False

    def _place_mines(self, safe_r: int, safe_c: int) -> None:
        allowed = [
            (r, c)
            for r in range(self.rows)
            for c in range(self.cols)
            if abs(r - safe_r) > 1 or abs(c - safe_c) > 1
        ]
        for r, c in self.rng.sample(allowed, self.num_mines):
            self.grid[r][c] = _MINE
        for r in range(self.rows):
            for c in range(self.cols):
                if self.grid[r][c] != _MINE:
                    self.grid[r][c] = sum(self.grid[nr][nc] == _MINE for nr, nc in self._neighbours(r, c))
        self.mines_placed = True

    def _neighbours(self, r: int, c: int) -> list[tuple[int, int]]:
        return [
            (r + dr, c + dc) for dr, dc in _NEIGHBOURS if 0 <= r + dr < self.rows and 0 <= c + dc < self.cols
        ]

    def _flood(self, r: int, c: int) -> int:
        """Reveal (r, c) and, through cells with no adjacent mine, every unflagged cell it touches; count them."""
        self.revealed[r][c] = True
        queue, count = deque([(r, c)]), 1
        while queue:
            cr, cc = queue.popleft()
            if self.grid[cr][cc] != 0:
                continue
            for nr, nc in self._neighbours(cr, cc):
                if not self.revealed[nr][nc] and not self.flags[nr][nc]:
                    self.revealed[nr][nc] = True
                    count += 1
                    queue.append((nr, nc))
        return count

    def _solved(self) -> bool:
        return self.mines_placed and all(
            self.flags[r][c] if self.grid[r][c] == _MINE else self.revealed[r][c]
            for r in range(self.rows)
            for c in range(self.cols)
        )

    def _random_cell(self, rng: random.Random) -> tuple[int, int]:
        return rng.randrange(self.rows), rng.randrange(self.cols)

    def _random_action(self, rng: random.Random) -> str:
        kind = "flag" if rng.random() < 0.1 else "reveal"  # GEM samples reveal 9 times in 10
        return _action(kind, *self._random_cell(rng))
