"""Random Sokoban levels that are solvable within a move budget by construction.

1. Room: GEM's random walk stamping 3x3 masks of floor into a walled rectangle.
2. Targets on floor cells that are not corners (as GEM places them), boxes on them, and the player on
   another floor cell.
3. Reverse play from that solved position: the player walks to a box and pulls it (preferring pulls that
   take a box away from its target), a few times, spending at most `move_budget` moves in total. Played
   backwards, every pull is a push and every walk a walk, so the position reached is solvable in at most
   as many moves as were spent. Several such walks run, and the position kept is the one with the best
   GEM score (pulls x total box displacement) among those with every box off every target and the
   player not hiding a target.

Everything draws from the `random.Random` passed in, so a seed fixes the level.
"""

from __future__ import annotations

import random

from gem_envs.envs.sokoban.level import Level, neighbours

# GEM's topology masks: the floor cells each walk step stamps, as (row, col) offsets around the walker.
_MASKS = (
    ((0, -1), (0, 0), (0, 1)),
    ((-1, 0), (0, 0), (1, 0)),
    ((0, -1), (0, 0), (1, 0)),
    ((0, -1), (0, 0), (1, -1), (1, 0)),
    ((0, 0), (0, 1), (1, 0)),
)
_WALK_DIRECTIONS = ((1, 0), (0, 1), (-1, 0), (0, -1))
_P_CHANGE_DIRECTION = 0.35  # GEM's p_change_directions
_WALKS = 12  # reverse walks per room; more walks find higher-scoring positions at a linear cost
_ATTEMPTS = 300  # rooms tried before giving up: a budget too small for the boxes fails every time
_MAX_WALK = 300  # reverse moves per walk at most, whatever the budget (GEM's reverse search depth)


def generate_level(rng: random.Random, rows: int, cols: int, num_boxes: int, move_budget: int) -> Level:
    """A level whose shortest solution takes at most `move_budget` moves, with every box off its target."""
    walk_steps = int(1.7 * (rows + cols))  # GEM's num_gen_steps
    for _ in range(_ATTEMPTS):
        floor = _room(rng, rows, cols, walk_steps)
        placed = _place(rng, rows, cols, floor, num_boxes)
        if placed is None:
            continue
        targets, player = placed
        found = _reverse_play(rng, rows, cols, floor, targets, player, move_budget)
        if found is not None:
            boxes, player = found
            walls = frozenset(cell for cell, is_floor in enumerate(floor) if not is_floor)
            return Level(rows, cols, walls, tuple(targets), tuple(sorted(boxes)), player)
    raise RuntimeError(
        f"no {rows}x{cols} level with {num_boxes} boxes solvable within {move_budget} moves after {_ATTEMPTS} "
        "rooms; use fewer boxes, a larger room or a larger turn limit"
    )


def _room(rng: random.Random, rows: int, cols: int, steps: int) -> list[bool]:
    """Floor flags per cell: a walk over the interior with direction changes, stamping a random mask."""
    floor = [False] * (rows * cols)
    r, c = rng.randint(1, rows - 2), rng.randint(1, cols - 2)
    dr, dc = rng.choice(_WALK_DIRECTIONS)
    for _ in range(steps):
        if rng.random() < _P_CHANGE_DIRECTION:
            dr, dc = rng.choice(_WALK_DIRECTIONS)
        r = min(max(r + dr, 1), rows - 2)
        c = min(max(c + dc, 1), cols - 2)
        for mr, mc in rng.choice(_MASKS):
            fr, fc = r + mr, c + mc
            if 0 < fr < rows - 1 and 0 < fc < cols - 1:
                floor[fr * cols + fc] = True
    return floor


def _place(
    rng: random.Random, rows: int, cols: int, floor: list[bool], num_boxes: int
) -> tuple[list[int], int] | None:
    """Random player cell and `num_boxes` target cells (not corners), or None if the room is too small."""
    cells = [cell for cell, is_floor in enumerate(floor) if is_floor]
    if len(cells) < num_boxes + 2:
        return None
    player = rng.choice(cells)
    up, down, left, right = neighbours(rows, cols)
    candidates = [
        cell
        for cell in cells
        if cell != player
        and not (
            (not floor[up[cell]] or not floor[down[cell]])
            and (not floor[left[cell]] or not floor[right[cell]])
        )
    ]
    if len(candidates) < num_boxes:
        return None
    return sorted(rng.sample(candidates, num_boxes)), player


def _reverse_play(
    rng: random.Random, rows: int, cols: int, floor: list[bool], targets: list[int], start: int, budget: int
) -> tuple[list[int], int] | None:
    """Best-scoring (boxes, player) over several budget-bounded pull walks; None if no walk qualifies."""
    nbr = neighbours(rows, cols)  # rooms have a wall border, so no floor cell has a -1 neighbour
    is_target = [False] * len(floor)
    for cell in targets:
        is_target[cell] = True
    best: tuple[list[int], int] | None = None
    best_score = 0
    for _ in range(_WALKS):
        boxes = list(targets)  # boxes[i] started on targets[i]
        occupied = is_target[:]
        player, left, pulls = start, min(budget, _MAX_WALK), 0
        while left > 0:
            dist = _distances(nbr, floor, occupied, player)
            # (box, direction, walk): walk to the cell beside box `i` on side `d`, then pull the box towards d.
            # Pulls that take a box farther from its target come first: they make longer, GEM-like levels.
            away, other = [], []
            for i, box in enumerate(boxes):
                for d in range(4):
                    stand = nbr[d][box]
                    if 0 <= dist[stand] < left:
                        behind = nbr[d][stand]
                        if floor[behind] and not occupied[behind]:
                            farther = _manhattan(stand, targets[i], cols) > _manhattan(box, targets[i], cols)
                            (away if farther else other).append((i, d, dist[stand]))
            if not away and not other:
                break
            i, d, walk = rng.choice(away or other)
            step = nbr[d]
            left -= walk
            player = step[boxes[i]]
            room = 0  # pulls that fit in a row: free cells behind the player, and moves left
            cell = step[player]
            while room < left and floor[cell] and not occupied[cell]:
                room += 1
                cell = step[cell]
            pulled = rng.randint(1, room)
            left -= pulled
            pulls += pulled
            occupied[boxes[i]] = False
            boxes[i] = _advance(step, boxes[i], pulled)
            player = step[boxes[i]]
            occupied[boxes[i]] = True
            if is_target[player] or any(is_target[box] for box in boxes):
                continue
            score = pulls * sum(
                _manhattan(box, target, cols) for box, target in zip(boxes, targets, strict=True)
            )
            if score > best_score:
                best, best_score = (list(boxes), player), score
    return best


def _manhattan(a: int, b: int, cols: int) -> int:
    return abs(a // cols - b // cols) + abs(a % cols - b % cols)


def _advance(step: tuple[int, ...], cell: int, times: int) -> int:
    for _ in range(times):
        cell = step[cell]
    return cell


def _distances(
    nbr: tuple[tuple[int, ...], ...], floor: list[bool], occupied: list[bool], start: int
) -> list[int]:
    """Walking distance from `start` to every cell around the boxes; -1 where the player cannot go."""
    dist = [-1] * len(floor)
    dist[start] = 0
    frontier = [start]
    steps = 0
    while frontier:
        steps += 1
        reached = []
        for cell in frontier:
            for step in nbr:
                nxt = step[cell]
                if dist[nxt] < 0 and floor[nxt] and not occupied[nxt]:
                    dist[nxt] = steps
                    reached.append(nxt)
        frontier = reached
    return dist
