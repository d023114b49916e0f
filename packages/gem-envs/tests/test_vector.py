import pytest

import gem_envs
from gem_envs import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, make_vec
from gem_envs.vector import WorkerError

ENV_ID = "game:GuessTheNumber-v0-easy"


def make_all(kind: str, n: int = 4, **kwargs):
    if kind == "sync":
        return make_vec(ENV_ID, num_envs=n, **kwargs)
    return make_vec(ENV_ID, num_envs=n, async_mode=True, backend=kind, num_workers=2, **kwargs)


@pytest.fixture(params=["sync", "thread", "process"])
def kind(request):
    return request.param


def test_vector_reset_matches_single_envs_seeded_seed_plus_i(kind):
    with make_all(kind) as vec:
        observations, infos = vec.reset(seed=100)
    singles = [gem_envs.make(ENV_ID).reset(seed=100 + i) for i in range(4)]
    assert observations == [o for o, _ in singles]
    assert infos == [i for _, i in singles]


def test_partial_step_only_steps_the_given_envs_in_key_order(kind):
    with make_all(kind) as vec:
        vec.reset(seed=0)
        observations, rewards, terminated, _, infos = vec.step({3: "\\boxed{5}", 1: "no answer"})
        assert len(observations) == 2
        # Env 1 got a format error (GEM: -0.1, episode over); env 3 a parsable guess.
        assert rewards[1] == pytest.approx(-0.1) and terminated[1]
        assert rewards[0] != pytest.approx(-0.1)
        # Envs 0 and 2 were never stepped: a full step now is their first turn.
        _, _, _, _, infos = vec.step(["\\boxed{1}"] * 4)
    reference = gem_envs.make(ENV_ID)
    reference.reset(seed=0)
    expected_first_turn = reference.step("\\boxed{1}")
    assert infos[0] == expected_first_turn[4]


def test_same_step_autoreset_returns_new_episode_and_keeps_final_observation(kind):
    with make_all(kind, n=2) as vec:
        vec.reset(seed=0)
        observations, _, terminated, _, infos = vec.step(["garbage", "garbage"])
    assert terminated == [True, True]
    assert all("final_observation" in info for info in infos)
    assert all("valid" in info["final_observation"] for info in infos)
    # The returned observation starts the next episode (the instructions), not the error message.
    assert observations[0] != infos[0]["final_observation"]


def test_next_step_autoreset_ignores_the_action_after_an_episode_ends():
    with make_all("sync", n=1, autoreset_mode=AutoresetMode.NEXT_STEP) as vec:
        vec.reset(seed=0)
        _, _, terminated, _, _ = vec.step(["garbage"])
        assert terminated == [True]
        _, rewards, terminated, truncated, _ = vec.step(["garbage"])
        assert rewards == [0.0] and terminated == [False] and truncated == [False]


def test_bad_actions_and_seeds_are_clear_errors(kind):
    with make_all(kind, n=2) as vec:
        with pytest.raises(ValueError, match="expected a list of 2"):
            vec.step(["a"])
        with pytest.raises(IndexError, match="out of range"):
            vec.step({5: "a"})
        with pytest.raises(ValueError, match="seed"):
            vec.reset(seed=[1, 2, 3])


def test_env_errors_in_a_worker_reach_the_caller():
    with make_all("process", n=2) as vec:
        with pytest.raises(WorkerError, match="ResetNeeded"):
            vec.step(["\\boxed{1}", "\\boxed{1}"])  # stepped before reset
        vec.reset(seed=0)  # the workers survive the error
        assert len(vec.step(["\\boxed{1}", "\\boxed{2}"])[0]) == 2


def test_mixed_ids_and_vec_kwargs():
    vec = make_vec(["game:Sokoban-v0-easy", "SimpleSokoban"], vec_kwargs=[{"max_turns": 5}, {}])
    assert isinstance(vec, SyncVectorEnv)
    assert vec.envs[0].max_turns == 5
    observations, _ = vec.reset(seed=1)
    assert len(observations) == 2


def test_async_backend_is_validated():
    with pytest.raises(ValueError, match="backend"):
        AsyncVectorEnv([], backend="gpu")
