"""ROLL-style Sokoban (`sokoban`, `SimpleSokoban`, ...): parsing, gym-sokoban rewards, metrics, episode ends."""

import random

import pytest

import gem_envs
from gem_envs import EnvConfigError, ResetNeeded
from gem_envs.envs.sokoban import RollSokobanEnv, roll_style
from gem_envs.envs.sokoban.level import Level

ONE_BOX = "#######\n#_____#\n#PX_O_#\n#_____#\n#######"
TWO_BOXES = "#######\n#_____#\n#PX_O_#\n#_____#\n#_X_O_#\n#######"
THINK = r"<think>(.*?)</think>\s*<answer>(.*?)</answer>"


@pytest.fixture
def fixed_env(monkeypatch):
    """A RollSokobanEnv whose every reset yields the given level (generation patched out)."""

    def build(text: str = ONE_BOX, **kwargs) -> RollSokobanEnv:
        level = Level.from_text(text)
        monkeypatch.setattr(roll_style, "generate_level", lambda rng, rows, cols, boxes, budget: level)
        kwargs.setdefault("num_boxes", len(level.boxes))
        env = RollSokobanEnv(dim_room=(level.rows, level.cols), seed=0, **kwargs)
        env.reset()
        return env

    return build


def answer(name: str) -> str:
    return f"<answer>{name}</answer>"


def test_reset_returns_the_grid_and_the_instructions(fixed_env):
    env = fixed_env()
    observation, info = env.reset()
    assert observation == ONE_BOX
    assert info == {
        "env_instruction": roll_style.ENV_INSTRUCTION + "\nThe meaning of each symbol in the state is:\n"
        "#: wall, _: empty, O: target, √: box on target, X: box, P: player, S: player on target\n"
        "Your available actions are:\nUp, Down, Left, Right",
        "suffix": f"Here is the current state of the Sokoban puzzle:\n{ONE_BOX}\n",
    }


def test_gym_sokoban_rewards_and_solving_terminates(fixed_env):
    env = fixed_env()
    observation, reward, terminated, truncated, info = env.step(answer("Right"))
    assert observation == "#######\n#_____#\n#_PXO_#\n#_____#\n#######"
    assert (reward, terminated, truncated) == (pytest.approx(-0.1), False, False)
    assert info["metrics"] == {
        "action_is_effective": True,
        "action_is_valid": True,
        "success": False,
        "format_penalty": 0.0,
    }
    assert info["action_desc"] == "At turn 1, you moved Right, which is effective."
    observation, reward, terminated, truncated, info = env.step(answer("right"))
    assert observation == "#######\n#_____#\n#__P√_#\n#_____#\n#######"
    assert (reward, terminated, truncated) == (pytest.approx(10.9), True, False)
    assert info["metrics"]["success"] is True
    with pytest.raises(ResetNeeded):
        env.step(answer("Up"))


def test_box_onto_and_off_a_target(fixed_env):
    env = fixed_env(TWO_BOXES)
    assert env.step(answer("Right"))[1] == pytest.approx(-0.1)
    assert env.step(answer("Right"))[1] == pytest.approx(0.9)
    observation, reward, terminated, _, info = env.step(answer("Right"))
    assert (reward, terminated, info["metrics"]["success"]) == (pytest.approx(-1.1), False, False)
    assert observation.splitlines()[2] == "#___SX#"  # the player now hides the target


def test_blocked_moves_are_valid_but_not_effective(fixed_env):
    env = fixed_env()
    observation, reward, terminated, _, info = env.step(answer("Left"))
    assert (observation, reward, terminated) == (ONE_BOX, pytest.approx(-0.1), False)
    assert info["metrics"]["action_is_valid"] and not info["metrics"]["action_is_effective"]
    assert info["action_desc"] == "At turn 1, you tried to move Left, which is not effective yet."


@pytest.mark.parametrize("reply", ["Up", "<answer>Jump</answer>", "<answer>Up", "", "\\boxed{up}"])
def test_an_invalid_action_is_a_penalised_no_op(fixed_env, reply):
    env = fixed_env(format_penalty=-0.15)
    observation, reward, terminated, truncated, info = env.step(reply)
    assert (observation, reward, terminated, truncated) == (ONE_BOX, pytest.approx(-0.25), False, False)
    assert info["metrics"] == {
        "action_is_effective": False,
        "action_is_valid": False,
        "success": False,
        "format_penalty": -0.15,
    }
    assert info["action_desc"] == "At turn 1, You did not provide a valid action."
    assert env.step(answer("Right"))[0] != ONE_BOX  # play goes on


def test_parsing_follows_roll(fixed_env):
    env = fixed_env(max_steps=50)
    # Chat special tokens are stripped, names match case-insensitively, the first <answer> counts.
    assert env.step("<|im_start|><answer> up <|im_end|></answer>")[4]["metrics"]["action_is_valid"]
    assert env.step("<answer>DOWN</answer> <answer>Up</answer>")[4]["action_desc"].startswith(
        "At turn 2, you moved DOWN"
    )
    think = fixed_env(action_pattern=THINK)
    assert think.step("<think>push it</think>\n<answer>Right</answer>")[4]["metrics"]["action_is_effective"]
    assert not think.step(answer("Right"))[4]["metrics"]["action_is_valid"]


def test_the_step_limit_ends_the_episode_truncated(fixed_env):
    env = fixed_env(max_steps=2)
    env.step(answer("Up"))
    assert env.step(answer("Down"))[2:4] == (True, True)
    env = fixed_env(max_steps=2)
    env.step("no action")
    assert env.step("no action again")[2:4] == (True, True)
    env = fixed_env(max_steps=2)
    env.step(answer("Right"))
    assert env.step(answer("Right"))[1:4] == (pytest.approx(10.9), True, False)


def test_custom_lookups_render_and_parse(fixed_env):
    lookup = {0: "W", 1: ".", 2: "G", 3: "C", 4: "B", 5: "A", 6: "@"}
    env = fixed_env(grid_lookup=lookup, action_lookup={1: "North", 2: "South", 3: "West", 4: "East"})
    assert env.reset()[0] == "WWWWWWW\nW.....W\nWAB.G.W\nW.....W\nWWWWWWW"
    for move in ("North", "east", "East", "EAST"):
        env.step(answer(move))
    observation = env.step(answer("South"))[0]
    assert observation.splitlines()[2] == "W.B.@.W"  # the player on a target uses code 6
    assert env.solution()[0] in {answer(name) for name in ("North", "South", "West", "East")}


def test_default_glyph_for_player_on_target_is_s(fixed_env):
    env = fixed_env()
    for move in ("Up", "Right", "Right", "Right", "Down"):
        observation = env.step(answer(move))[0]
    assert observation.splitlines()[2] == "#_X_S_#"


def test_solution_and_random_actions():
    env = gem_envs.make("SimpleSokoban")
    for seed in range(10):
        env.reset(seed=seed)
        plan = env.solution()
        assert plan and len(plan) <= env.max_steps
        for action in plan:
            result = env.step(action)
        assert result[2:4] == (True, False) and result[4]["metrics"]["success"]
    assert {env.sample_random_action() for _ in range(60)} == {
        answer(n) for n in ("Up", "Down", "Left", "Right")
    }


def test_catalogue_presets():
    simple = gem_envs.make("SimpleSokoban")
    assert (simple.dim_room, simple.num_boxes, simple.max_steps, simple.format_penalty) == (
        (6, 6),
        1,
        10,
        -0.15,
    )
    larger = gem_envs.make("LargerSokoban")
    assert (larger.dim_room, larger.num_boxes, larger.move_budget) == ((10, 10), 2, 10)
    vocab = gem_envs.make("SokobanDifferentGridVocab")
    observation, info = vocab.reset(seed=0)
    assert set(observation) <= set("W.GCBA@\n") and "A: player" in info["env_instruction"]
    default = gem_envs.make("sokoban")
    assert (default.dim_room, default.num_boxes, default.max_steps, default.search_depth) == (
        (10, 10),
        4,
        20,
        300,
    )


def test_determinism_and_global_random_state():
    state = random.getstate()
    a = gem_envs.make("sokoban", seed=3)
    b = gem_envs.make("sokoban", seed=3)
    assert a.reset() == b.reset()
    assert a.reset(seed=8) == b.reset(seed=8)
    assert a.step(a.sample_random_action()) == b.step(b.sample_random_action())
    assert random.getstate() == state


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"grid_lookup": {0: "#"}}, "grid_lookup"),
        ({"grid_lookup": ["#"] * 7}, "grid_lookup"),
        ({"grid_vocab": {"#": 1}}, "grid_vocab"),
        ({"action_lookup": {1: "Up", 2: "up", 3: "Left", 4: "Right"}}, "action_lookup"),
        ({"action_lookup": {0: "Up", 1: "Down", 2: "Left", 3: "Right"}}, "action_lookup"),
        ({"action_pattern": "(<answer>"}, "action_pattern"),
        ({"format_penalty": "high"}, "format_penalty"),
        ({"max_steps": 0}, "max_steps"),
        ({"search_depth": 0}, "search_depth"),
        ({"num_boxes": 2, "search_depth": 1}, "search_depth"),
        ({"dim_room": (4, 10)}, "dim_room"),
    ],
)
def test_bad_parameters_name_the_field(kwargs, field):
    with pytest.raises(EnvConfigError, match=field):
        gem_envs.make("sokoban", **kwargs)


def test_lookup_keys_may_be_strings():
    env = gem_envs.make("SimpleSokoban", grid_lookup={str(code): "#_O√XPS"[code] for code in range(7)})
    assert env.grid_lookup[6] == "S"
