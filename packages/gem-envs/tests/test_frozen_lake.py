import random
from collections import Counter

import pytest

import gem_envs
from gem_envs import EnvConfigError, ResetNeeded
from gem_envs.envs.frozen_lake import FrozenLakeEnv
from gem_envs.envs.frozen_lake.env import SYMBOLS
from gem_envs.envs.frozen_lake.maps import DOWN, RIGHT, shortest_path

PRESETS = ["FrozenLake", "game:FrozenLake-v0-easy", "game:FrozenLake-v0-hard"]


def lake(grid, **kwargs):
    """A reset env whose map is replaced by `grid` (player back on the start)."""
    env = FrozenLakeEnv(**{"is_slippery": False, "size": len(grid), **kwargs})
    env.reset(seed=0)
    env.grid, env.position = grid, (0, 0)
    return env


def test_shortest_path_avoids_holes_and_reports_unreachable_goals():
    grid = ["SFF", "HHF", "FFG"]
    assert shortest_path(grid) == [RIGHT, RIGHT, DOWN, DOWN]
    assert shortest_path(grid, start=(2, 2)) == []
    assert shortest_path(grid, start=(1, 0)) is None  # standing in a hole
    assert shortest_path(["SH", "HG"]) is None


@pytest.mark.parametrize("env_id", PRESETS)
def test_every_map_is_solvable_within_max_steps_and_the_solution_wins(env_id):
    env = gem_envs.make(env_id)
    plain = gem_envs.make(env_id, is_slippery=False)  # same maps; the plan must win without slipping
    for seed in range(1000):
        env.reset(seed=seed)
        grid = env.grid
        assert len(grid) == env.size and grid[0][0] == "S" and grid[-1][-1] == "G"
        path = shortest_path(grid)
        assert path is not None and len(path) <= env.max_steps
        plain.reset(seed=seed)
        assert plain.grid == grid
        for action in plain.solution():
            _, reward, terminated, truncated, info = plain.step(action)
        assert (reward, terminated, truncated, info["metrics"]["success"]) == (1.0, True, False, True)


def test_reset_shows_the_grid_with_instructions_and_suffix_in_info():
    env = gem_envs.make("game:FrozenLake-v0-hard")
    observation, info = env.reset(seed=1)
    rows = observation.split("\n")
    assert len(rows) == 8 and all(len(row) == 8 for row in rows)
    assert rows[0][0] == "P" and rows[-1][-1] == "G" and set(observation) <= set(SYMBOLS) | {"\n"}
    assert (
        "Left, Down, Right, Up" in info["env_instruction"]
        and "<answer>Right</answer>" in info["env_instruction"]
    )
    assert "slippery" in info["env_instruction"] and "100 step(s) left" in info["suffix"]


def test_goal_pays_one_and_ends_the_episode():
    env = lake(["SF", "FG"])
    env.step("<answer>Right</answer>")
    observation, reward, terminated, truncated, info = env.step("<answer>Down</answer>")
    assert observation == "__\n_√" and (reward, terminated, truncated) == (1.0, True, False)
    assert info["metrics"] == {
        "action_is_effective": True,
        "action_is_valid": True,
        "success": True,
        "format_penalty": 0.0,
    }
    with pytest.raises(ResetNeeded):
        env.step("<answer>Up</answer>")


def test_hole_ends_the_episode_with_zero():
    env = lake(["SH", "FG"])
    observation, reward, terminated, _, info = env.step("<answer>Right</answer>")
    assert observation == "_X\n_G" and reward == 0.0 and terminated and not info["metrics"]["success"]
    assert env.solution() == []


def test_unparsable_action_costs_format_penalty_and_changes_nothing():
    env = gem_envs.make("FrozenLake")
    before, _ = env.reset(seed=4)
    for action in ["Right", "<answer>Sideways</answer>", "<answer>Right", "\\boxed{right}"]:
        observation, reward, terminated, truncated, info = env.step(action)
        assert (observation, reward, terminated, truncated) == (before, -0.01, False, False)
        assert info["metrics"]["action_is_valid"] is False and info["metrics"]["format_penalty"] == -0.01


def test_actions_are_case_insensitive_and_chat_tokens_are_stripped():
    env = lake(["SFF", "FFF", "FFG"])
    assert env.step("<|im_start|>I go <answer> rIGHT </answer><|im_end|>")[4]["metrics"]["action_is_valid"]
    assert env.position == (0, 1)
    _, _, _, _, info = env.step("<answer>Up</answer>")  # into the border: valid but not effective
    assert info["metrics"]["action_is_valid"] and not info["metrics"]["action_is_effective"]


def test_think_preset_needs_think_then_answer():
    env = gem_envs.make("FrozenLakeThink")
    env.reset(seed=0)
    assert env.step("<answer>Right</answer>")[4]["metrics"]["action_is_valid"] is False
    assert env.step("<think>go right</think>\n<answer>Right</answer>")[4]["metrics"]["action_is_valid"]
    assert all(action.startswith("<think>") for action in env.solution())
    assert env.sample_random_action().startswith("<think>")


def test_max_steps_truncates_the_episode():
    env = gem_envs.make("FrozenLake")  # max_steps=10
    env.reset(seed=0)
    results = [env.step("nothing") for _ in range(10)]
    assert [r[3] for r in results] == [False] * 9 + [True]
    assert not any(r[2] for r in results)
    assert not env.episode_running


def test_slippery_ice_moves_intended_or_perpendicular_a_third_each():
    env = lake(["SFFFF", *["FFFFF"] * 3, "FFFFG"], is_slippery=True, max_steps=3000)
    moves = Counter()
    for _ in range(3000):
        env.position = (2, 2)
        env.step("<answer>Down</answer>")
        moves[env.position] += 1
    assert set(moves) == {(3, 2), (2, 1), (2, 3)}  # down, left, right; never up
    assert all(850 < count < 1150 for count in moves.values())


def test_same_seed_same_episode_and_envs_do_not_share_rng():
    def transcript(env, seed, other=None):
        observations = [env.reset(seed=seed)[0]]
        for _ in range(15):
            if other is not None:
                other.reset()
                other.step(other.sample_random_action())
            observation, _, terminated, truncated, _ = env.step(env.sample_random_action())
            observations.append(observation)
            if terminated or truncated:
                break
        return observations

    a, b = gem_envs.make("game:FrozenLake-v0-hard"), gem_envs.make("game:FrozenLake-v0-hard")
    expected = transcript(a, 3)
    assert transcript(a, 3) == expected
    assert transcript(a, 3, other=b) == expected
    assert transcript(a, 4) != expected


def test_global_random_state_is_untouched():
    state = random.getstate()
    env = gem_envs.make("game:FrozenLake-v0-hard")
    env.reset(seed=0)
    for _ in range(20):
        if not env.episode_running:
            env.reset()
        env.step(env.sample_random_action())
    assert random.getstate() == state


def test_map_seed_fixes_the_map_across_episodes():
    def maps(env):
        grids = set()
        for seed in range(10):
            env.reset(seed=seed)
            grids.add(tuple(env.grid))
        return grids

    assert len(maps(FrozenLakeEnv(map_seed=7))) == 1
    assert len(maps(FrozenLakeEnv())) > 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"size": 1}, "size"),
        ({"p": 0}, "p"),
        ({"p": 1.5}, "p"),
        ({"is_slippery": "yes"}, "is_slippery"),
        ({"map_seed": "seven"}, "map_seed"),
        ({"size": 4, "max_steps": 5}, "max_steps"),
        ({"format_penalty": "high"}, "format_penalty"),
        ({"action_pattern": "(unclosed"}, "action_pattern"),
    ],
)
def test_bad_constructor_values_name_the_field(kwargs, field):
    with pytest.raises(EnvConfigError, match=field):
        FrozenLakeEnv(**kwargs)


def test_a_lake_too_full_of_holes_is_a_config_error_at_reset():
    env = FrozenLakeEnv(size=8, p=0.02)
    with pytest.raises(EnvConfigError, match="p: no 8x8 map"):
        env.reset(seed=0)


def test_a_pattern_whose_last_group_may_not_match_never_raises():
    env = FrozenLakeEnv(action_pattern=r"<answer>(?:(\w+)!|(\w+))</answer>", is_slippery=False)
    env.reset(seed=0)
    assert env.step("<answer>Right!</answer>")[4]["metrics"]["action_is_valid"] is False
    assert env.step("<answer>Right</answer>")[4]["metrics"]["action_is_valid"] is True
