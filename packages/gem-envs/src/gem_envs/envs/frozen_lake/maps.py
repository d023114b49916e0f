"""FrozenLake maps as rows of gymnasium's letters (S start, F frozen, H hole, G goal): generation and BFS.

Cells are drawn like gymnasium's `generate_random_map` (frozen with probability p, S top-left, G bottom-right),
but a map is kept only if its shortest safe path fits the step budget, so every episode can be won.
"""

from __future__ import annotations

import random
from collections import deque

from gem_envs.errors import EnvConfigError

START, FROZEN, HOLE, GOAL = "S", "F", "H", "G"
LEFT, DOWN, RIGHT, UP = 0, 1, 2, 3
_DELTAS = {LEFT: (0, -1), DOWN: (1, 0), RIGHT: (0, 1), UP: (-1, 0)}
MAX_TRIES = 10_000

Position = tuple[int, int]


def move(grid: list[str], position: Position, action: int) -> Position:
    """Where `action` leads from `position`; walking into the border leaves the player in place."""
    dr, dc = _DELTAS[action]
    r, c = position[0] + dr, position[1] + dc
    return (r, c) if 0 <= r < len(grid) and 0 <= c < len(grid[0]) else position


def shortest_path(grid: list[str], start: Position = (0, 0)) -> list[int] | None:
    """Fewest actions from `start` to the goal without entering a hole; None when there is no such path."""
    if grid[start[0]][start[1]] == HOLE:
        return None
    parents: dict[Position, tuple[Position, int] | None] = {start: None}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        if grid[here[0]][here[1]] == GOAL:
            path = []
            while parents[here] is not None:
                here, action = parents[here]
                path.append(action)
            return path[::-1]
        for action in _DELTAS:
            there = move(grid, here, action)
            if there not in parents and grid[there[0]][there[1]] != HOLE:
                parents[there] = (here, action)
                queue.append(there)
    return None


def random_map(size: int, p: float, max_steps: int, rng: random.Random) -> list[str]:
    """A `size`x`size` map, cells frozen with probability `p`, whose goal is at most `max_steps` moves away."""
    for _ in range(MAX_TRIES):
        rows = [[FROZEN if rng.random() < p else HOLE for _ in range(size)] for _ in range(size)]
        rows[0][0], rows[-1][-1] = START, GOAL
        grid = ["".join(row) for row in rows]
        path = shortest_path(grid)
        if path is not None and len(path) <= max_steps:
            return grid
    raise EnvConfigError(
        f"p: no {size}x{size} map with frozen-cell probability {p} had a path of at most {max_steps} steps "
        f"in {MAX_TRIES} draws; raise p or max_steps"
    )
