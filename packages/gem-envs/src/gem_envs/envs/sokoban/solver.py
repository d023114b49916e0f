"""Exact Sokoban solver, optimal in player moves (what a turn costs), by A* over (player, box bitmask).

Heuristic: the sum over boxes of the fewest pushes that take each box to its nearest target on an empty
board. A move changes it by at most one, so it is consistent and the first solution found is optimal.
Squares from which no box can reach a target ("dead squares") are never pushed into, and a push that
freezes a box that is not on a target in a 2x2 block of walls and boxes is pruned.
"""

from __future__ import annotations

import heapq
from collections import deque

from gem_envs.envs.sokoban.level import DIRECTIONS, OPPOSITE, Level, neighbours

_UNREACHABLE = 1 << 30


def push_distances(level: Level) -> list[int]:
    """Fewest pushes from each cell to the nearest target ignoring other boxes; _UNREACHABLE = dead square.

    Found backwards from the targets: a box at `cell` pushed one step to `to` needs the player at the cell
    beyond `cell`, on the side away from `to`.
    """
    nbr = neighbours(level.rows, level.cols)
    size = level.rows * level.cols
    walls = level.walls
    dist = [_UNREACHABLE] * size
    queue = deque(level.targets)
    for cell in level.targets:
        dist[cell] = 0
    while queue:
        to = queue.popleft()
        for d in range(4):
            back = nbr[OPPOSITE[d]]
            cell = back[to]
            if cell < 0 or cell in walls or dist[cell] != _UNREACHABLE:
                continue
            stand = back[cell]
            if stand < 0 or stand in walls:
                continue
            dist[cell] = dist[to] + 1
            queue.append(cell)
    return dist


def solve(level: Level, max_moves: int | None = None) -> list[str] | None:
    """A shortest solution as direction names, [] if already solved; None if none has <= max_moves moves."""
    if level.solved:
        return []
    limit = _UNREACHABLE if max_moves is None else max_moves
    rows, cols = level.rows, level.cols
    size = rows * cols
    nbr = neighbours(rows, cols)
    walls = level.walls
    is_wall = [cell in walls for cell in range(size)]
    pdist = push_distances(level)
    h0 = sum(pdist[box] for box in level.boxes)
    if h0 > limit:  # also catches a box on a dead square
        return None
    on_target = 0
    for cell in level.targets:
        on_target |= 1 << cell
    start_boxes = 0
    for cell in level.boxes:
        start_boxes |= 1 << cell
    shift = size.bit_length()
    player_mask = (1 << shift) - 1
    start = (start_boxes << shift) | level.player
    best = {start: 0}
    parent: dict[int, tuple[int, int]] = {}
    # Entries (f, -g, key): among equal f, expand the deepest first, which reaches the goal sooner.
    heap = [(h0, 0, start)]
    while heap:
        f, neg_g, key = heapq.heappop(heap)
        g = -neg_g
        if best[key] < g:
            continue
        h = f - g
        boxes = key >> shift
        here = key & player_mask
        cost = g + 1
        for d in range(4):
            nxt = nbr[d]
            ahead = nxt[here]
            if ahead < 0 or is_wall[ahead]:
                continue
            new_h, new_boxes = h, boxes
            if boxes >> ahead & 1:
                beyond = nxt[ahead]
                if beyond < 0 or pdist[beyond] == _UNREACHABLE or boxes >> beyond & 1:
                    continue
                new_boxes = boxes ^ (1 << ahead) ^ (1 << beyond)
                if new_boxes == on_target:
                    parent[(new_boxes << shift) | ahead] = (key, d)
                    return _path(parent, (new_boxes << shift) | ahead, start)
                if _frozen(beyond, new_boxes, on_target, nbr, is_wall):
                    continue
                new_h = h - pdist[ahead] + pdist[beyond]
            if cost + new_h > limit:
                continue
            new_key = (new_boxes << shift) | ahead
            known = best.get(new_key)
            if known is not None and known <= cost:
                continue
            best[new_key] = cost
            parent[new_key] = (key, d)
            heapq.heappush(heap, (cost + new_h, -cost, new_key))
    return None


def _frozen(
    cell: int, boxes: int, on_target: int, nbr: tuple[tuple[int, ...], ...], is_wall: list[bool]
) -> bool:
    """True if a box just pushed to `cell` closes a 2x2 block of walls/boxes holding a box off target.

    No box of such a block can ever move again, so a block with a box off its target is a dead end.
    """
    up, down, left, right = nbr
    for vertical, horizontal in ((up, left), (up, right), (down, left), (down, right)):
        side_v = vertical[cell]
        side_h = horizontal[cell]
        corner = horizontal[side_v] if side_v >= 0 else -1
        block = (cell, side_v, side_h, corner)
        if all(c < 0 or is_wall[c] or boxes >> c & 1 for c in block) and any(
            c >= 0 and boxes >> c & 1 and not on_target >> c & 1 for c in block
        ):
            return True
    return False


def _path(parent: dict[int, tuple[int, int]], key: int, start: int) -> list[str]:
    moves = []
    while key != start:
        key, d = parent[key]
        moves.append(DIRECTIONS[d])
    moves.reverse()
    return moves
