"""The Sokoban level type, the exact solver (checked against plain BFS) and the generator's guarantees."""

import random
from collections import deque

import pytest

from gem_envs.envs.sokoban.generator import generate_level
from gem_envs.envs.sokoban.level import DIRECTIONS, Level, neighbours
from gem_envs.envs.sokoban.solver import push_distances, solve

LINE = """
#######
#P_X_O#
#######
"""

AROUND = """
######
#O___#
#_X__#
#___P#
######
"""

CORNERED = """
#####
#X_O#
#P__#
#####
"""


def bfs_length(level: Level, limit: int) -> int | None:
    """Reference: breadth-first search over (player, boxes) with no pruning at all."""
    nbr = neighbours(level.rows, level.cols)
    targets = frozenset(level.targets)
    start = (level.player, frozenset(level.boxes))
    if start[1] == targets:
        return 0
    seen = {start}
    queue = deque([(start, 0)])
    while queue:
        (player, boxes), depth = queue.popleft()
        if depth == limit:
            continue
        for step in nbr:
            ahead = step[player]
            if ahead < 0 or ahead in level.walls:
                continue
            new_boxes = boxes
            if ahead in boxes:
                beyond = step[ahead]
                if beyond < 0 or beyond in level.walls or beyond in boxes:
                    continue
                new_boxes = (boxes - {ahead}) | {beyond}
            state = (ahead, new_boxes)
            if state in seen:
                continue
            if new_boxes == targets:
                return depth + 1
            seen.add(state)
            queue.append((state, depth + 1))
    return None


def replay(level: Level, moves: list[str]) -> Level:
    """Apply moves with the plain rules; every move in a solution must be legal."""
    nbr = neighbours(level.rows, level.cols)
    player, boxes = level.player, set(level.boxes)
    for move in moves:
        step = nbr[DIRECTIONS.index(move)]
        ahead = step[player]
        assert ahead >= 0 and ahead not in level.walls
        if ahead in boxes:
            beyond = step[ahead]
            assert beyond >= 0 and beyond not in level.walls and beyond not in boxes
            boxes = (boxes - {ahead}) | {beyond}
        player = ahead
    return Level(level.rows, level.cols, level.walls, level.targets, tuple(sorted(boxes)), player)


def test_level_text_round_trip_and_codes():
    level = Level.from_text(AROUND)
    assert (level.rows, level.cols, level.player) == (5, 6, 3 * 6 + 4)
    assert level.targets == (7,) and level.boxes == (14,)
    assert Level.from_text(level.to_text()) == level
    assert Level.from_text("# # # # #\n# P X O #\n# # # # #").boxes == (7,)
    on_target = Level.from_text("#####\n#S_X#\n#___#\n#####")
    assert (
        on_target.targets == (6,) and on_target.player == 6 and on_target.to_text().splitlines()[1] == "#S_X#"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("###\n#P#\n###", "as many boxes as targets"),
        ("#####\n#PXX#\n#_O_#\n#####", "as many boxes as targets"),
        ("#####\n#_XO#\n#####", "exactly one player"),
        ("#####\n#PXZ#\n#####", "unknown symbol"),
        ("####\n#PXO#\n####", "rectangle"),
    ],
)
def test_level_rejects_malformed_text(text, problem):
    with pytest.raises(ValueError, match=problem):
        Level.from_text(text)


def test_level_from_gem_rooms():
    fixed = [[0, 0, 0, 0, 0], [0, 2, 1, 2, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]]
    state = [[0, 0, 0, 0, 0], [0, 5, 4, 2, 0], [0, 1, 4, 1, 0], [0, 0, 0, 0, 0]]
    level = Level.from_rooms(fixed, state)
    assert level.to_text() == "#####\n#SXO#\n#_X_#\n#####"


@pytest.mark.parametrize(("text", "length"), [(LINE, 3), (AROUND, 6)])
def test_solver_finds_known_optimal_lengths(text, length):
    level = Level.from_text(text)
    moves = solve(level)
    assert moves is not None and len(moves) == length == bfs_length(level, 20)
    assert replay(level, moves).solved


def test_solver_respects_max_moves_and_solved_levels():
    level = Level.from_text(LINE)
    assert solve(level, max_moves=2) is None
    assert solve(level, max_moves=3) == ["right", "right", "right"]
    assert solve(replay(level, ["right", "right", "right"])) == []


def test_solver_returns_none_for_unsolvable_levels():
    assert solve(Level.from_text(CORNERED)) is None
    frozen = Level.from_text("######\n#____#\n#_XX_#\n#_XX_#\n#OOOO#\n#P___#\n######")
    assert solve(frozen) is None  # the 2x2 block of boxes can never move
    assert bfs_length(frozen, 40) is None


def test_push_distances_mark_dead_squares():
    level = Level.from_text(CORNERED)
    dist = push_distances(level)
    cols = level.cols
    assert dist[1 * cols + 3] == 0  # the target
    assert dist[1 * cols + 2] == 1
    assert dist[1 * cols + 1] >= 1 << 30  # a corner: no push ever leaves it


def test_solver_is_optimal_against_bfs_on_random_positions():
    """Generated levels and random positions reached from them (some unsolvable) agree with plain BFS."""
    rng = random.Random(7)
    checked = 0
    for seed in range(60):
        level = generate_level(random.Random(seed), 6, 6, 1 + seed % 2, 12)
        for _ in range(3):
            moves = solve(level, max_moves=12)
            expected = bfs_length(level, 12)
            assert (None if moves is None else len(moves)) == expected
            if moves is not None:
                assert replay(level, moves).solved
            checked += 1
            level = _random_walk(level, rng, 6)
    assert checked == 180


def _random_walk(level: Level, rng: random.Random, steps: int) -> Level:
    nbr = neighbours(level.rows, level.cols)
    for _ in range(steps):
        move = rng.choice(DIRECTIONS)
        step = nbr[DIRECTIONS.index(move)]
        ahead = step[level.player]
        if ahead in level.walls or (
            ahead in level.boxes and (step[ahead] in level.walls or step[ahead] in level.boxes)
        ):
            continue
        level = replay(level, [move])
    return level


def test_generator_is_deterministic_and_respects_the_budget():
    a = generate_level(random.Random(5), 8, 8, 4, 50)
    b = generate_level(random.Random(5), 8, 8, 4, 50)
    assert a == b
    assert a != generate_level(random.Random(6), 8, 8, 4, 50)
    for seed in range(30):
        level = generate_level(random.Random(seed), 7, 9, 3, 15)
        assert (level.rows, level.cols, len(level.boxes)) == (7, 9, 3)
        assert not set(level.boxes) & set(level.targets) and level.player not in level.targets
        border = {c for c in range(7 * 9) if c < 9 or c >= 6 * 9 or c % 9 in (0, 8)}
        assert border <= level.walls
        moves = solve(level, max_moves=15)
        assert moves is not None and len(moves) <= 15


def test_generator_reports_impossible_budgets():
    with pytest.raises(RuntimeError, match="fewer boxes"):
        generate_level(random.Random(0), 6, 6, 3, 3)
