import random

import pytest

import gem_envs
from gem_envs import ResetNeeded


def test_step_before_reset_names_the_env():
    env = gem_envs.make("game:Sokoban-v0-easy")
    with pytest.raises(ResetNeeded, match="game:Sokoban-v0-easy"):
        env.step("\\boxed{up}")


def test_step_after_episode_end_raises_until_reset(counting_env_cls):
    env = counting_env_cls(start=1)
    env.env_id = "test:Counting"
    env.reset(seed=0)
    assert env.step("x")[2] is True
    with pytest.raises(ResetNeeded, match="test:Counting"):
        env.step("x")
    env.reset()
    assert env.step("x")[2] is True


def test_non_string_action_is_a_type_error(counting_env_cls):
    env = counting_env_cls()
    env.reset(seed=0)
    with pytest.raises(TypeError, match="str"):
        env.step(3)


def test_same_seed_same_episode_and_envs_do_not_share_rng(counting_env_cls):
    a, b = counting_env_cls(), counting_env_cls()
    first = a.reset(seed=1)[0]
    b.reset(seed=2)
    assert a.reset(seed=1)[0] == first
    # Interleaving another env's resets never changes this env's stream.
    a.reset(seed=5)
    expected = [a.reset()[0] for _ in range(3)]
    a.reset(seed=5)
    got = []
    for _ in range(3):
        b.reset()
        got.append(a.reset()[0])
    assert got == expected


def test_envs_never_touch_global_random_state():
    state = random.getstate()
    # gem_envs' own catalogue: tests and other installed packages (roll) register more ids in the same registry
    builtin = [i for i in gem_envs.list_envs() if str(gem_envs.spec(i).entry_point).startswith("gem_envs.")]
    for env_id in builtin:
        env = gem_envs.make(env_id)
        env.reset(seed=3)
        env.step(env.sample_random_action())
    assert random.getstate() == state


def test_construction_seed_fixes_the_unseeded_reset_stream(counting_env_cls):
    assert counting_env_cls(seed=9).reset()[0] == counting_env_cls(seed=9).reset()[0]
    assert counting_env_cls(seed=9).reset()[0] != counting_env_cls(seed=10).reset()[0]
