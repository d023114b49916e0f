"""Every generated level is solvable within its turn limit: proved by the exact solver over 1,000 seeds per preset.

The solver's plan is also played through the env, so the env's move rules and the solver's agree.
"""

import pytest

import gem_envs

SEEDS = range(1000)


def _limit(env) -> int:
    return env.max_turns if hasattr(env, "max_turns") else env.max_steps


def _start_is_unsolved(env) -> bool:
    level = env.level
    return not set(level.boxes) & set(level.targets) and level.player not in level.targets


@pytest.mark.parametrize(
    "env_id",
    [
        "game:Sokoban-v0-easy",
        pytest.param("game:Sokoban-v0-hard", marks=pytest.mark.slow),
        pytest.param("game:Sokoban-v0-random", marks=pytest.mark.slow),  # half 8x8 with 5 boxes: ~15 s
        "SimpleSokoban",
        "LargerSokoban",
        "SokobanDifferentGridVocab",
        pytest.param("sokoban", marks=pytest.mark.slow),
    ],
)
def test_every_seed_is_solvable_within_the_turn_limit(env_id):
    env = gem_envs.make(env_id)
    for seed in SEEDS:
        env.reset(seed=seed)
        limit = _limit(env)
        assert _start_is_unsolved(env), f"{env_id} seed {seed}: a box or the player starts on a target"
        plan = env.solution()
        assert 0 < len(plan) <= limit, (
            f"{env_id} seed {seed}: no solution within {limit} moves\n{env.level.to_text()}"
        )
        for action in plan:
            _, reward, terminated, truncated, info = env.step(action)
        assert terminated and not truncated, f"{env_id} seed {seed}: the solver's plan did not solve the env"
        assert reward == 1.0 if env_id.startswith("game:") else info["metrics"]["success"]
