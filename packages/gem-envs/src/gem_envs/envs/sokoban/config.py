"""Constructor-argument checks shared by both Sokoban env styles."""

from __future__ import annotations

from typing import Any

from gem_envs.envs._common import check, check_int

MIN_SIDE = 5  # a 3x3 interior is the smallest where a box can be pulled off its target


def room_shape(field: str, value: Any) -> tuple[int, int]:
    """`value` as (rows, cols): two integers, each at least MIN_SIDE (the border rows/columns are walls)."""
    ok = isinstance(value, (tuple, list)) and len(value) == 2
    check(ok, field, f"must be a pair (rows, cols), got {value!r}")
    for side in value:
        check_int(field, side, MIN_SIDE)
    return int(value[0]), int(value[1])


def room_fits(
    dim_field: str, shape: tuple[int, int], num_boxes: int, budget_field: str, move_budget: int
) -> None:
    """Reject presets no level can satisfy: every box needs a cell, and at least one move to reach its target."""
    interior = (shape[0] - 2) * (shape[1] - 2)
    check(
        num_boxes + 2 <= interior,
        "num_boxes",
        f"at most {interior - 2} boxes fit a {dim_field} of {shape[0]}x{shape[1]}, got {num_boxes}",
    )
    check(
        num_boxes <= move_budget, budget_field, f"must be at least num_boxes ({num_boxes}), got {move_budget}"
    )
