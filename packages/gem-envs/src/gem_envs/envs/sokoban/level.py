"""An immutable Sokoban level on flat cell indices (cell = row * cols + col), and the grid geometry.

Flat ints and tuples keep generation, play and search free of coordinate pairs and of numpy.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

DIRECTIONS = ("up", "down", "left", "right")
DELTAS = ((-1, 0), (1, 0), (0, -1), (0, 1))
OPPOSITE = (1, 0, 3, 2)

# GEM's room codes (gym-sokoban's): what a cell shows, and the index into a glyph table.
WALL, FLOOR, TARGET, BOX_ON_TARGET, BOX, PLAYER, PLAYER_ON_TARGET = range(7)
GEM_SYMBOLS = ("#", "_", "O", "√", "X", "P", "S")


@functools.lru_cache(maxsize=32)
def neighbours(rows: int, cols: int) -> tuple[tuple[int, ...], ...]:
    """For each direction in DIRECTIONS order, the cell one step from every cell, or -1 off the grid."""
    table = []
    for dr, dc in DELTAS:
        row = []
        for cell in range(rows * cols):
            r, c = divmod(cell, cols)
            r, c = r + dr, c + dc
            row.append(r * cols + c if 0 <= r < rows and 0 <= c < cols else -1)
        table.append(tuple(row))
    return tuple(table)


@dataclass(frozen=True)
class Level:
    """Walls, targets, boxes and the player of one position; as many boxes as targets."""

    rows: int
    cols: int
    walls: frozenset[int]
    targets: tuple[int, ...]
    boxes: tuple[int, ...]
    player: int

    def __post_init__(self) -> None:
        size = self.rows * self.cols
        if self.rows < 1 or self.cols < 1:
            raise ValueError(f"level must be at least 1x1, got {self.rows}x{self.cols}")
        cells = [*self.targets, *self.boxes, self.player]
        if any(not 0 <= cell < size for cell in [*cells, *self.walls]):
            raise ValueError(f"a cell index lies outside the {self.rows}x{self.cols} grid")
        if any(cell in self.walls for cell in cells):
            raise ValueError("a target, box or the player sits on a wall")
        if not self.boxes or len(self.boxes) != len(self.targets):
            raise ValueError(
                f"need as many boxes as targets (>= 1), got {len(self.boxes)} and {len(self.targets)}"
            )
        if len(set(self.boxes)) != len(self.boxes) or len(set(self.targets)) != len(self.targets):
            raise ValueError("two boxes (or two targets) share a cell")
        if self.player in self.boxes:
            raise ValueError("the player stands on a box")

    @property
    def solved(self) -> bool:
        return set(self.boxes) == set(self.targets)

    def codes(self) -> list[int]:
        """GEM's room code of every cell, with PLAYER_ON_TARGET where the player hides a target."""
        codes = [FLOOR] * (self.rows * self.cols)
        for cell in self.walls:
            codes[cell] = WALL
        for cell in self.targets:
            codes[cell] = TARGET
        for cell in self.boxes:
            codes[cell] = BOX_ON_TARGET if codes[cell] == TARGET else BOX
        codes[self.player] = PLAYER_ON_TARGET if codes[self.player] == TARGET else PLAYER
        return codes

    def to_text(self) -> str:
        """Rows of GEM symbols without separators (S = player on target); `from_text` reads it back."""
        codes = self.codes()
        return "\n".join(
            "".join(GEM_SYMBOLS[code] for code in codes[r * self.cols : (r + 1) * self.cols])
            for r in range(self.rows)
        )

    @classmethod
    def from_text(cls, text: str) -> Level:
        """Parse rows of GEM symbols (# _ O √ X P S), either packed ("#_P#") or space-separated ("# _ P #")."""
        lines = [line for line in text.strip("\n").splitlines() if line.strip()]
        grid = [line.split() if " " in line.strip() else list(line.strip()) for line in lines]
        if not grid or len({len(row) for row in grid}) != 1:
            raise ValueError("level text must be a non-empty rectangle of symbols")
        try:
            codes = [GEM_SYMBOLS.index(symbol) for row in grid for symbol in row]
        except ValueError:
            raise ValueError(f"unknown symbol in level text; use {' '.join(GEM_SYMBOLS)}") from None
        return cls.from_codes(len(grid), len(grid[0]), codes)

    @classmethod
    def from_codes(cls, rows: int, cols: int, codes: Sequence[int]) -> Level:
        """Build from one GEM room code per cell (exactly one player)."""
        players = [cell for cell, code in enumerate(codes) if code in (PLAYER, PLAYER_ON_TARGET)]
        if len(players) != 1:
            raise ValueError(f"need exactly one player, got {len(players)}")
        return cls(
            rows=rows,
            cols=cols,
            walls=frozenset(cell for cell, code in enumerate(codes) if code == WALL),
            targets=tuple(
                cell for cell, code in enumerate(codes) if code in (TARGET, BOX_ON_TARGET, PLAYER_ON_TARGET)
            ),
            boxes=tuple(cell for cell, code in enumerate(codes) if code in (BOX, BOX_ON_TARGET)),
            player=players[0],
        )

    @classmethod
    def from_rooms(cls, room_fixed: Sequence[Sequence[int]], room_state: Sequence[Sequence[int]]) -> Level:
        """Build from GEM's `room_fixed` (walls, floor, targets) and `room_state` (boxes, player) as lists."""
        rows, cols = len(room_state), len(room_state[0])
        codes = []
        for fixed_row, state_row in zip(room_fixed, room_state, strict=True):
            for fixed, state in zip(fixed_row, state_row, strict=True):
                if fixed == TARGET:
                    state = {BOX: BOX_ON_TARGET, PLAYER: PLAYER_ON_TARGET, FLOOR: TARGET}.get(state, state)
                codes.append(state)
        return cls.from_codes(rows, cols, codes)
