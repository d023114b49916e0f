"""GEM-style Sokoban (`game:Sokoban-v0-*`): GEM 0.1.0's texts, parsing, rewards and episode ends."""

import random
import re

import pytest

import gem_envs
from gem_envs import EnvConfigError, EnvKwargError, ResetNeeded
from gem_envs.envs.sokoban import SokobanEnv, gem_style
from gem_envs.envs.sokoban.level import Level

# Two boxes; the upper one is two pushes right from its target, the lower one three.
TWO_BOXES = """
########
#______#
#PX_O__#
#______#
#_X__O_#
########
"""

INSTRUCTIONS = (
    "You are solving the Sokoban puzzle. You are the player and you need to push all boxes to targets.\n"
    "When you are right next to a box, you can push it by moving in the same direction.\n"
    "You cannot push a box through a wall or another box, and you cannot pull a box.\n"
    "you have to complete the puzzle within {turns} turns.\n"
    "On the board, objects are represented as:\n"
    "- The player (you) appears as 'P'\n"
    "- Walls are represented with '#'\n"
    "- Boxes are marked as 'X'\n"
    "- Empty goals are shown with 'O'\n"
    "- Boxes on goals are visualized with '√'\n"
    "- Empty floor is shown as '_'\n\n"
    "To submit your move, type the command in \\boxed{{}}.\n"
    "For example: \\boxed{{{move}}} to move {move}.\n"
    "Use logic and deduction to push all boxes onto the target positions!"
)


def board(text: str) -> str:
    """GEM's suffix for a packed level text: cells joined by spaces, every row ending in a newline."""
    rows = "".join(" ".join(row) + "\n" for row in text.strip().splitlines())
    return f"Here is the current board layout:\n{rows}\nEnter your move."


@pytest.fixture
def fixed_env(monkeypatch):
    """A SokobanEnv whose every reset yields TWO_BOXES (generation patched out)."""

    def build(max_turns: int = 20) -> SokobanEnv:
        level = Level.from_text(TWO_BOXES)
        monkeypatch.setattr(gem_style, "generate_level", lambda rng, rows, cols, boxes, budget: level)
        env = SokobanEnv(dim_room=(6, 8), num_boxes=2, max_turns=max_turns, seed=0)
        env.reset()
        return env

    return build


def test_reset_returns_gem_instructions_and_board():
    env = gem_envs.make("game:Sokoban-v0-easy")
    observation, info = env.reset(seed=3)
    move = re.search(r"For example: \\boxed\{(\w+)\}", observation).group(1)
    assert move in env.action_space
    assert observation == INSTRUCTIONS.format(turns=20, move=move)
    assert list(info) == ["suffix"]
    suffix = info["suffix"]
    assert suffix.startswith("Here is the current board layout:\n") and suffix.endswith(
        "\n\nEnter your move."
    )
    rows = suffix.split("\n")[1:-2]
    assert len(rows) == 6 and all(re.fullmatch(r"[#_OX√P]( [#_OX√P]){5}", row) for row in rows)
    assert "".join(rows).count("P") == 1 and "".join(rows).count("X") == 2 and "".join(rows).count("O") == 2
    assert env.action_space == ["up", "down", "left", "right"]


def test_moves_pushes_and_collisions_use_gem_messages(fixed_env):
    env = fixed_env()
    assert env.step("\\boxed{left}") == (
        "At turn 1, you cannot move left - you would collide with wall or other boxes!",
        0.0,
        False,
        False,
        {"suffix": board(TWO_BOXES)},
    )
    observation, reward, terminated, truncated, info = env.step("\\boxed{right}")
    assert (observation, reward, terminated, truncated) == (
        "At turn 2, you pushed a box while you moved right.",
        0.0,
        False,
        False,
    )
    assert info["suffix"] == board("########\n#______#\n#_PXO__#\n#______#\n#_X__O_#\n########")
    assert env.step("\\boxed{right}")[0] == "At turn 3, you pushed a box while you moved right."
    assert env.step("\\boxed{up}")[0] == "At turn 4, you moved up."
    _, _, _, _, info = env.step("\\boxed{right}")
    assert info["suffix"] == board("########\n#___P__#\n#___√__#\n#______#\n#_X__O_#\n########")


def test_a_box_that_cannot_move_blocks_the_player(fixed_env):
    env = fixed_env()
    for move in ("down", "right", "up"):
        env.step(f"\\boxed{{{move}}}")
    observation, reward, _, _, info = env.step("\\boxed{up}")
    assert (observation, reward) == (
        "At turn 4, you cannot move up - you would collide with wall or other boxes!",
        0.0,
    )
    assert info["suffix"] == board("########\n#_X____#\n#_P_O__#\n#______#\n#_X__O_#\n########")


def test_player_on_a_target_shows_as_p_and_the_target_returns(fixed_env):
    env = fixed_env()
    for move in ("up", "right", "right", "right"):
        env.step(f"\\boxed{{{move}}}")
    _, _, _, _, info = env.step("\\boxed{down}")
    assert info["suffix"] == board("########\n#______#\n#_X_P__#\n#______#\n#_X__O_#\n########")
    _, _, _, _, info = env.step("\\boxed{right}")
    assert info["suffix"] == board("########\n#______#\n#_X_OP_#\n#______#\n#_X__O_#\n########")


def test_actions_are_case_insensitive_and_the_last_boxed_wins(fixed_env):
    env = fixed_env()
    assert env.step("I think \\BOXED{Right}")[0] == "At turn 1, you pushed a box while you moved right."
    assert env.step("\\boxed{down} no wait \\boxed{up}")[0] == "At turn 2, you moved up."
    # GEM's regex only sees the four words, so a later non-direction box does not hide an earlier move.
    assert env.step("\\boxed{right} \\boxed{north}")[0] == "At turn 3, you moved right."


@pytest.mark.parametrize(
    "reply", ["", "up", "\\boxed{ up }", "\\boxed{north}", "\\boxed{upward}", "<answer>up</answer>"]
)
def test_a_format_error_costs_0_1_and_ends_the_episode(fixed_env, reply):
    env = fixed_env()
    assert env.step(reply) == (
        "At turn 1, your submitted action is not valid.",
        -0.1,
        True,
        False,
        {"suffix": board(TWO_BOXES)},
    )
    with pytest.raises(ResetNeeded):
        env.step("\\boxed{up}")


def test_a_format_error_on_the_last_turn_is_also_truncated(fixed_env):
    env = fixed_env(max_turns=2)
    env.step("\\boxed{up}")
    assert env.step("nothing")[1:4] == (-0.1, True, True)


def test_the_turn_limit_pays_the_share_of_boxes_on_targets(fixed_env):
    env = fixed_env(max_turns=3)
    env.step("\\boxed{right}")
    env.step("\\boxed{right}")
    assert env.step("\\boxed{left}") == (
        "You have reached the maximum number of turns.",
        0.5,
        True,
        True,
        {"suffix": board("########\n#______#\n#_P_√__#\n#______#\n#_X__O_#\n########")},
    )
    env = fixed_env(max_turns=2)
    env.step("\\boxed{left}")
    assert env.step("\\boxed{left}")[:4] == ("You have reached the maximum number of turns.", 0.0, True, True)


def test_solving_pays_1_and_is_not_truncated_even_on_the_last_turn(fixed_env):
    env = fixed_env(max_turns=9)  # the optimum: two pushes, four moves round to the lower box, three pushes
    plan = env.solution()
    assert len(plan) == 9 and plan[:2] == ["\\boxed{right}"] * 2 and plan[-3:] == ["\\boxed{right}"] * 3
    for action in plan[:-1]:
        assert env.step(action)[1:4] == (0.0, False, False)
    assert env.step(plan[-1]) == (
        "Congratulations! You have solved the Sokoban puzzle!",
        1.0,
        True,
        False,
        {"suffix": board("########\n#______#\n#___√__#\n#______#\n#___P√_#\n########")},
    )


def test_solution_plays_to_a_win_from_start_and_midway():
    env = gem_envs.make("game:Sokoban-v0-hard")
    for seed in range(5):
        env.reset(seed=seed)
        env.step(env.sample_random_action())
        plan = env.solution()
        assert plan and len(plan) <= env.max_turns - 1
        for action in plan:
            result = env.step(action)
        assert result[1:4] == (1.0, True, False)
    with pytest.raises(ResetNeeded):
        env.solution()


def test_random_preset_draws_gem_presets_per_reset():
    env = gem_envs.make("game:Sokoban-v0-random")
    seen = set()
    for seed in range(30):
        observation, info = env.reset(seed=seed)
        preset = (env.dim_room, env.num_boxes, env.max_turns)
        assert preset in gem_style.RANDOM_PRESETS
        assert f"within {env.max_turns} turns" in observation
        assert info["suffix"].count("X") == env.num_boxes
        seen.add(preset)
    assert seen == set(gem_style.RANDOM_PRESETS)


def test_same_seed_same_episode_and_envs_do_not_interfere():
    a = gem_envs.make("game:Sokoban-v0-easy", seed=11)
    b = gem_envs.make("game:Sokoban-v0-easy", seed=11)
    other = gem_envs.make("game:Sokoban-v0-easy", seed=12)
    first = a.reset()
    other.reset()
    other.step(other.sample_random_action())
    assert b.reset() == first
    assert a.reset() == b.reset()
    assert a.reset(seed=99) == other.reset(seed=99)
    assert a.reset(seed=1)[1] != a.reset(seed=2)[1]


def test_global_random_state_is_untouched():
    state = random.getstate()
    env = gem_envs.make("game:Sokoban-v0-random")
    env.reset(seed=4)
    env.sample_random_action()
    env.step(env.sample_random_action())
    assert random.getstate() == state


def test_sample_random_action_is_well_formed_and_does_not_shift_episodes():
    env = gem_envs.make("game:Sokoban-v0-easy", seed=0)
    actions = {env.sample_random_action() for _ in range(50)}
    assert actions == {f"\\boxed{{{move}}}" for move in ("up", "down", "left", "right")}
    reference = gem_envs.make("game:Sokoban-v0-easy", seed=0)
    assert env.reset() == reference.reset()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"dim_room": (3, 6)}, "dim_room"),
        ({"dim_room": 6}, "dim_room"),
        ({"num_boxes": 0}, "num_boxes"),
        ({"num_boxes": 15}, "num_boxes"),
        ({"max_turns": 0}, "max_turns"),
        ({"num_boxes": 4, "max_turns": 3}, "max_turns"),
        ({"dim_room": None}, "dim_room"),
    ],
)
def test_bad_parameters_name_the_field(kwargs, field):
    with pytest.raises(EnvConfigError, match=field):
        gem_envs.make("game:Sokoban-v0-easy", **kwargs)


def test_unknown_keywords_are_rejected():
    with pytest.raises(EnvKwargError, match="room_size"):
        gem_envs.make("game:Sokoban-v0-random", room_size=None)
