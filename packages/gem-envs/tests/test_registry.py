import uuid

import pytest

import gem_envs
from gem_envs import EnvKwargError, UnknownEnvError


def fresh_id() -> str:
    return f"test:Counting-{uuid.uuid4().hex[:8]}"


def test_register_and_make_with_preset_and_override(counting_env_cls):
    env_id = fresh_id()
    gem_envs.register(env_id, counting_env_cls, start=5)
    env = gem_envs.make(env_id)
    assert env.env_id == env_id and env.start == 5
    assert gem_envs.make(env_id, start=2).start == 2
    assert env_id in gem_envs.list_envs("test:")


def test_register_by_import_string():
    env_id = fresh_id()
    gem_envs.register(env_id, "gem_envs.envs.arithmetic:ArithmeticEnv")
    assert type(gem_envs.make(env_id)).__name__ == "ArithmeticEnv"
    bad = fresh_id()
    gem_envs.register(bad, "no_such_module_xyz:Env")
    with pytest.raises(ImportError, match=bad):
        gem_envs.make(bad)


def test_duplicate_id_is_rejected(counting_env_cls):
    env_id = fresh_id()
    gem_envs.register(env_id, counting_env_cls)
    with pytest.raises(ValueError, match="already registered"):
        gem_envs.register(env_id, counting_env_cls)


def test_unknown_id_lists_close_matches_and_all_ids():
    with pytest.raises(UnknownEnvError) as err:
        gem_envs.make("game:Sokoban-v0-eazy")
    message = str(err.value)
    assert "Did you mean 'game:Sokoban-v0-easy'" in message
    assert "game:Sokoban-v0-hard" in message and "SimpleSokoban" in message


def test_unknown_kwarg_lists_valid_keywords():
    with pytest.raises(EnvKwargError) as err:
        gem_envs.make("game:Sokoban-v0-easy", num_boxess=3)
    assert "num_boxess" in str(err.value)
    assert "num_boxes" in str(err.value) and "max_turns" in str(err.value)


def test_builtin_catalogue_ids_are_registered():
    ids = set(gem_envs.list_envs())
    expected = {
        "game:Sokoban-v0-easy", "game:Sokoban-v0-hard", "game:Sokoban-v0-random",
        "sokoban", "SimpleSokoban", "LargerSokoban", "SokobanDifferentGridVocab",
        "frozen_lake", "FrozenLake", "game:FrozenLake-v0-easy", "game:FrozenLake-v0-hard",
        "game:GuessTheNumber-v0-easy", "game:Minesweeper-v0-easy", "game:Mastermind-v0-easy",
        "game:Game2048-v0-easy", "math:Arithmetic-v0",
    }  # fmt: skip
    assert expected <= ids


@pytest.mark.parametrize("env_id", gem_envs.list_envs())
def test_every_builtin_id_builds_resets_and_steps_any_string(env_id):
    env = gem_envs.make(env_id)
    observation, info = env.reset(seed=7)
    assert isinstance(observation, str) and isinstance(info, dict)
    for action in [
        "",
        "garbage \x00 \\boxed{",
        "<answer></answer>",
        "\\boxed{}" * 3,
        env.sample_random_action(),
    ]:
        if not env.episode_running:
            env.reset(seed=7)
        observation, reward, terminated, truncated, info = env.step(action)
        assert isinstance(observation, str)
        assert isinstance(reward, float)
        assert isinstance(terminated, bool) and isinstance(truncated, bool)
        assert isinstance(info, dict)
