"""End to end: a real admin, Sokoban envs served by its sandboxes (a game server per sandbox, or the GEM API
in pooled mode), and roll's trainer for a few steps. Every episode must reach a terminal state, and the
rewards the trainer logged must be the env's own: each trajectory is replayed on a local gem_envs env."""

from __future__ import annotations

import inspect
import math

import pytest
from integration_helpers import GEM_API_CONFIG, SANDBOX_CONFIG, TAG, Recorder, config, read_metrics

import gem_envs
import roll.envs  # noqa: F401  (registers sokoban_sandbox)
from roll.agentic.pipeline import AgenticPipeline
from roll.envs.sokoban_sandbox import SokobanSandboxEnv

STEPS = 2


def local_twin(custom):
    """The local gem_envs env that a custom_envs entry plays remotely (same game, same arguments)."""
    if custom.env_type == "sokoban_sandbox":
        own = set(inspect.signature(SokobanSandboxEnv.__init__).parameters)
        level = {k: v for k, v in custom.env_config.items() if k not in own}
        return gem_envs.make(custom.env_config.get("game_env_id", "sokoban"), **level)
    return gem_envs.make(custom.env_type, **custom.env_config)


def replay(custom, traj) -> None:
    """Replay a trajectory's replies on the local twin: same rewards, and the episode ended where it did."""
    env = local_twin(custom)
    env.reset(seed=traj.seed)
    ended = False
    for (_, reply), score in zip(traj.texts, traj.step_scores, strict=True):
        assert not ended, f"{traj.traj_id}: played on after the env ended the episode"
        _, reward, terminated, truncated, _ = env.step(reply)
        assert reward == score, f"{traj.traj_id}: the trainer logged {score}, the env gives {reward}"
        ended = terminated or truncated
    assert ended or len(traj.step_scores) == custom.max_steps, f"{traj.traj_id} stopped mid-episode"


@pytest.mark.parametrize("name", [SANDBOX_CONFIG, GEM_API_CONFIG])
def test_training_on_rock_served_sokoban(admin, tmp_path, name):
    cfg = config(name, admin.url, tmp_path, f"max_steps={STEPS}")
    pipe = AgenticPipeline(cfg, stdout=False)
    try:
        recorder = Recorder(pipe)
        history = pipe.run()
        slots = pipe.schedulers["train"].slots
        remote = [s.env for s in slots if s.env is not None]
        assert remote and all(getattr(env, "sandbox_id", None) for env in remote)  # really ROCK-served
    finally:
        pipe.close()
    assert len(history) == len(recorder.batches) == STEPS
    rows = read_metrics(cfg)
    assert [r["step"] for r in rows] == list(range(STEPS))
    custom = cfg.custom_envs[TAG]
    for row, batch in zip(rows, recorder.batches, strict=True):
        assert len(batch) == cfg.rollout_batch_size
        assert row[f"env/{TAG}/terminated"] == 1.0  # every episode reached a terminal state
        assert row["scheduler/env_failures"] == 0.0
        assert row[f"env/{TAG}/sandbox_replaced"] == 0.0
        for traj in batch:
            assert traj.terminated and len(traj.step_scores) >= 1
            replay(custom, traj)
        scores = [t.episode_score for t in batch]
        assert math.isclose(row["rollout/score/mean"], sum(scores) / len(scores), rel_tol=1e-5, abs_tol=1e-6)
        assert math.isclose(row["rollout/score/min"], min(scores), rel_tol=1e-5, abs_tol=1e-6)
    # validation ran at step 0 on ROCK-served envs too
    assert f"val/env/{TAG}/terminated" in rows[0]
