"""Mutable play state of a level and its text rendering, shared by the GEM- and ROLL-style envs.

A step touches at most three cells, so the board keeps one glyph list per row and re-joins only the rows a
move changed; an unchanged board returns the same cached string.
"""

from __future__ import annotations

from collections.abc import Sequence

from gem_envs.envs.sokoban.level import (
    BOX,
    BOX_ON_TARGET,
    FLOOR,
    PLAYER,
    PLAYER_ON_TARGET,
    TARGET,
    Level,
    neighbours,
)

BLOCKED, MOVED, PUSHED = 0, 1, 2


class Board:
    """Boxes and player on a level's fixed walls and targets; `move` applies one push-or-walk step."""

    def __init__(self, level: Level, glyphs: Sequence[str], cell_separator: str) -> None:
        """`glyphs[code]` is the text of each room code (0..6); cells of a row are joined by `cell_separator`."""
        if len(glyphs) != 7:
            raise ValueError(f"need one glyph per room code 0..6, got {len(glyphs)}")
        size = level.rows * level.cols
        self.level = level
        self.num_boxes = len(level.boxes)
        self._nbr = neighbours(level.rows, level.cols)
        self._open = [cell not in level.walls for cell in range(size)]
        self._target = [False] * size
        for cell in level.targets:
            self._target[cell] = True
        self._box = [False] * size
        for cell in level.boxes:
            self._box[cell] = True
        self.player = level.player
        self.boxes_on_target = sum(self._target[cell] for cell in level.boxes)
        self._glyphs = tuple(glyphs)
        self._sep = cell_separator
        self._row_of = [cell // level.cols for cell in range(size)]
        self._col_of = [cell % level.cols for cell in range(size)]
        codes = level.codes()
        self._cells = [
            [self._glyphs[code] for code in codes[r * level.cols : (r + 1) * level.cols]]
            for r in range(level.rows)
        ]
        self._rows = [cell_separator.join(row) for row in self._cells]
        self._dirty: set[int] = set()
        self._text = "\n".join(self._rows)

    @property
    def solved(self) -> bool:
        return self.boxes_on_target == self.num_boxes

    def move(self, direction: int) -> int:
        """Step the player one cell (0 up, 1 down, 2 left, 3 right), pushing a box ahead if it can slide.

        Returns BLOCKED (nothing changed: a wall, the grid edge, or a box that cannot move), MOVED or PUSHED.
        """
        nxt = self._nbr[direction]
        here = self.player
        ahead = nxt[here]
        if ahead < 0 or not self._open[ahead]:
            return BLOCKED
        box, target = self._box, self._target
        result = MOVED
        if box[ahead]:
            beyond = nxt[ahead]
            if beyond < 0 or not self._open[beyond] or box[beyond]:
                return BLOCKED
            box[ahead] = False
            box[beyond] = True
            self.boxes_on_target += target[beyond] - target[ahead]
            self._paint(beyond, BOX_ON_TARGET if target[beyond] else BOX)
            result = PUSHED
        self.player = ahead
        self._paint(here, TARGET if target[here] else FLOOR)
        self._paint(ahead, PLAYER_ON_TARGET if target[ahead] else PLAYER)
        return result

    def _paint(self, cell: int, code: int) -> None:
        row = self._row_of[cell]
        self._cells[row][self._col_of[cell]] = self._glyphs[code]
        self._dirty.add(row)

    def text(self) -> str:
        """The grid, rows joined by "\\n" (no trailing newline); the same object while nothing moved."""
        if self._dirty:
            sep, cells, rows = self._sep, self._cells, self._rows
            for row in self._dirty:
                rows[row] = sep.join(cells[row])
            self._dirty.clear()
            self._text = "\n".join(rows)
        return self._text

    def to_level(self) -> Level:
        """The current position as an immutable Level (for the solver)."""
        boxes = tuple(cell for cell, has_box in enumerate(self._box) if has_box)
        level = self.level
        return Level(level.rows, level.cols, level.walls, level.targets, boxes, self.player)
