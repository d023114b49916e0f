"""Layers 4–5: the step loop end to end on CPU: learning from scratch, multi-turn runs, resume, Ray DP."""

from __future__ import annotations

from pathlib import Path

import pytest

from roll.agentic.pipeline import AgenticPipeline
from roll.agentic.tracking import read_jsonl
from roll.config import load_and_validate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _pipeline(tmp_path: Path, name: str, overrides: list[str], model_dir: Path) -> AgenticPipeline:
    cfg, _, _ = load_and_validate(
        EXAMPLES / "tiny-cpu",
        name,
        [f"output_dir={tmp_path}", f"pretrain={model_dir}", "progress_bar=false", *overrides],
    )
    return AgenticPipeline(cfg, stdout=False)


def _run(tmp_path, name, overrides, model_dir, stop_at=None):
    p = _pipeline(tmp_path, name, overrides, model_dir)
    try:
        p.run(stop_at=stop_at)
    finally:
        p.close()
    return read_jsonl(Path(p.cfg.logging_dir) / "metrics.jsonl")


@pytest.mark.slow
def test_grpo_learns_single_turn_task_from_scratch(tmp_path, tiny_model_dir):
    rows = _run(tmp_path, "grpo_letter_echo", ["max_steps=100", "eval_steps=20"], tiny_model_dir)
    val = [r["val/score/mean"] for r in rows if "val/score/mean" in r]
    assert val[0] <= 0.1  # chance: a byte-level model hits one letter in ~1/259
    assert max(val[-2:]) >= 0.9, val
    train = [r["rollout/score/mean"] for r in rows]
    assert sum(train[-10:]) / 10 >= 0.9, train[-10:]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["agentic_frozen_lake", "agentic_sokoban"])
def test_multi_turn_run_completes_with_curve(tmp_path, tiny_model_dir, name):
    rows = _run(
        tmp_path,
        name,
        [
            "max_steps=2",
            "eval_steps=1",
            "save_steps=100",
            "rollout_batch_size=8",
            "train_env_manager.num_env_groups=2",
            "train_env_manager.num_groups_partition=[2]",
            "val_batch_size=4",
            "val_env_manager.num_env_groups=4",
            "val_env_manager.num_groups_partition=[2,2]",
        ],
        tiny_model_dir,
    )
    assert [r["step"] for r in rows] == [0, 1]
    tag = "FrozenLake" if "frozen" in name else "SimpleSokoban"
    for key in (
        "rollout/score/mean",
        f"env/{tag}/success",
        f"env/{tag}/action_is_valid",
        f"env/{tag}/num_actions",
        "actor/pg_loss",
        "critic/advantages/mean",
        "time/step_total",
        "system/tps",
        "val/score/mean",
    ):
        assert key in rows[0], key
    assert rows[0][f"env/{tag}/num_actions"] >= 1
    logs = tmp_path / "logs"
    assert (logs / "curves.png").stat().st_size > 1000
    assert any((tmp_path / "tensorboard").rglob("events.out.tfevents*"))
    assert (tmp_path / "checkpoints" / "checkpoint-1" / "actor_train" / "model").is_dir()


def test_resume_continues_the_same_run(tmp_path, tiny_model_dir):
    common = [
        "max_steps=4",
        "save_steps=2",
        "eval_steps=100",
        "rollout_batch_size=16",
        "train_env_manager.num_env_groups=4",
        "actor_train.training_args.per_device_train_batch_size=8",
        "actor_train.training_args.lr_scheduler_type=cosine",
    ]
    straight = _run(tmp_path / "a", "grpo_letter_echo", common, tiny_model_dir)
    first = _run(tmp_path / "b", "grpo_letter_echo", common, tiny_model_dir, stop_at=3)
    assert [r["step"] for r in first] == [0, 1, 2]
    assert (tmp_path / "b" / "checkpoints" / "checkpoint-2").is_dir()
    resumed = _run(
        tmp_path / "b", "grpo_letter_echo", [*common, "resume_from_checkpoint=true"], tiny_model_dir
    )
    assert [r["step"] for r in resumed] == [0, 1, 2, 3]
    for key in ("rollout/score/mean", "actor/pg_loss", "actor/grad_norm", "actor/lr", "actor/entropy"):
        assert resumed[3][key] == pytest.approx(straight[3][key], rel=1e-4, abs=1e-6), key


@pytest.mark.ray
@pytest.mark.slow
def test_ray_data_parallel_matches_single_rank(tmp_path, tiny_model_dir, monkeypatch):
    pytest.importorskip("ray")
    import torch

    from roll.distributed.cluster import Cluster
    from roll.platforms import CpuPlatform
    from roll.strategies.base import LossConfig

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    import ray

    cfg, _, plan = load_and_validate(
        EXAMPLES / "tiny-cpu", "grpo_letter_echo", [f"pretrain={tiny_model_dir}", "actor_train.world_size=2"]
    )
    assert {p.role: p.world_size for p in plan}["actor_train"] == 2
    g = torch.Generator().manual_seed(0)
    B, L = 8, 12
    batch = {
        "input_ids": torch.randint(0, 250, (B, L), generator=g),
        "attention_mask": torch.ones(B, L, dtype=torch.long),
    }
    batch["response_mask"] = torch.zeros(B, L - 1)
    batch["response_mask"][:, 6:] = 1
    batch["advantages"] = torch.randn(B, L - 1, generator=g) * batch["response_mask"]
    import shutil
    import tempfile

    ray_dir = tempfile.mkdtemp(prefix="roll-ray-")  # AF_UNIX paths must stay under 107 bytes
    ray.init(num_cpus=3, include_dashboard=False, _temp_dir=ray_dir, log_to_driver=False)
    try:
        dp = Cluster("actor_train", cfg.actor_train, "train", 42, 2, "ray", None, 120, CpuPlatform, 1)
        dp.execute_dp("train_step", batch, LossConfig(), concat=False)
        states = dp.execute_all("state_dict")
        dp.shutdown()
    finally:
        ray.shutdown()
        shutil.rmtree(ray_dir, ignore_errors=True)
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    cfg.actor_train.world_size = 1
    single = Cluster("actor_train", cfg.actor_train, "train", 42, 1, "local", None, 120, CpuPlatform)
    single.execute_dp("train_step", batch, LossConfig(), concat=False)
    ref = single.execute_rank0("state_dict")
    assert max((states[0][k] - ref[k]).abs().max().item() for k in ref) < 1e-4
    closed: list[str] = []  # shutdown closes each strategy (a vllm engine stops its processes there)
    single.workers[0].strategy.close = lambda: closed.append("actor_train")
    single.shutdown()
    assert closed == ["actor_train"] and single.workers == []


@pytest.mark.ray
@pytest.mark.slow
def test_pipeline_on_ray_with_two_train_and_critic_ranks(tmp_path, tiny_model_dir, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    # PPO + GAE: the critic is a Ray role too, with its own data-parallel ranks
    p = _pipeline(
        tmp_path,
        "ppo_letter_echo",
        [
            "max_steps=2",
            "actor_train.world_size=2",
            "critic.world_size=2",
            "eval_steps=1",
            "rollout_batch_size=16",
            "train_env_manager.num_env_groups=16",
            "actor_train.training_args.per_device_train_batch_size=8",
            "critic.training_args.per_device_train_batch_size=8",
        ],
        tiny_model_dir,
    )
    try:
        assert p.runtime == "ray" and p.actor_train.world_size == 2 and p.critic.world_size == 2
        history = p.run()
    finally:
        p.close()
    import ray

    assert not ray.is_initialized()
    assert len(history) == 2 and "actor/pg_loss" in history[1] and "val/score/mean" in history[1]
    assert "critic/loss" in history[1] and "critic/values/mean" in history[1]
    assert (tmp_path / "checkpoints" / "checkpoint-1" / "critic" / "model").is_dir()


def test_cli_trains_from_a_shipped_config(tmp_path, tiny_model_dir, capsys):
    from roll.cli import main

    rc = main(
        [
            "--config_path",
            "tiny-cpu",
            "--config_name",
            "grpo_letter_echo",
            f"output_dir={tmp_path}",
            f"pretrain={tiny_model_dir}",
            "max_steps=2",
            "progress_bar=false",
        ]
    )
    assert rc == 0
    assert "[roll] step 1:" in capsys.readouterr().out
    rows = read_jsonl(tmp_path / "logs" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1]
    assert (tmp_path / "checkpoints" / "checkpoint-1" / "pipeline_state.pt").is_file()


def test_ppo_gae_with_critic_logs_critic_metrics_and_resumes(tmp_path, tiny_model_dir):
    common = [
        "max_steps=3",
        "save_steps=1",
        "eval_steps=100",
        "rollout_batch_size=8",
        "train_env_manager.num_env_groups=8",
        "actor_train.training_args.per_device_train_batch_size=4",
        "critic.training_args.per_device_train_batch_size=4",
    ]
    straight = _run(tmp_path / "a", "ppo_letter_echo", common, tiny_model_dir)
    assert [r["step"] for r in straight] == [0, 1, 2]
    for key in (
        "critic/loss",
        "critic/value",
        "critic/vpred",
        "critic/clipfrac",
        "critic/error",
        "critic/lr",
        "critic/values/mean",
        "critic/returns/mean",
        "critic/advantages/mean",
        "actor/pg_loss",
    ):
        assert key in straight[0], key
    assert (tmp_path / "a" / "checkpoints" / "checkpoint-2" / "critic" / "model").is_dir()
    _run(tmp_path / "b", "ppo_letter_echo", common, tiny_model_dir, stop_at=2)
    resumed = _run(
        tmp_path / "b", "ppo_letter_echo", [*common, "resume_from_checkpoint=true"], tiny_model_dir
    )
    assert [r["step"] for r in resumed] == [0, 1, 2]
    for key in ("rollout/score/mean", "critic/values/mean", "critic/loss", "critic/vpred", "actor/pg_loss"):
        assert resumed[2][key] == pytest.approx(straight[2][key], rel=1e-4, abs=1e-6), key


def _comparable(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("time/") and k != "system/tps"}


def test_async_ratio_zero_is_exactly_sync(tmp_path, tiny_model_dir):
    common = [
        "max_steps=3",
        "eval_steps=2",
        "save_steps=100",
        "rollout_batch_size=16",
        "train_env_manager.num_env_groups=4",
        "val_batch_size=8",
        "val_env_manager.num_env_groups=8",
        "actor_train.training_args.per_device_train_batch_size=8",
    ]
    sync = _run(tmp_path / "sync", "grpo_letter_echo", common, tiny_model_dir)
    p = _pipeline(tmp_path / "async0", "grpo_letter_echo", common, tiny_model_dir)
    try:
        assert p.rollout is None  # async_generation_ratio: 0 (the default) is the synchronous loop
        p.rollout = p.async_rollout(0)  # the background producer, bounded to 0 stale versions
        p.run()
    finally:
        p.close()
    rows = read_jsonl(Path(p.cfg.logging_dir) / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2] and "val/score/mean" in rows[2]
    for a, b in zip(sync, rows, strict=True):
        assert _comparable(a) == _comparable(b)
    assert all(r["rollout/staleness/max"] == 0 for r in rows)


@pytest.mark.parametrize("ratio", [1, 2])
def test_async_generation_staleness_is_bounded(tmp_path, tiny_model_dir, ratio):
    overrides = [
        f"async_generation_ratio={ratio}",
        "max_steps=4",
        "eval_steps=3",
        "save_steps=2",
        "rollout_batch_size=16",
        "train_env_manager.num_env_groups=4",
        "val_batch_size=8",
        "val_env_manager.num_env_groups=8",
        "actor_train.training_args.per_device_train_batch_size=8",
    ]
    rows = _run(tmp_path, "grpo_letter_echo", overrides, tiny_model_dir)
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    for r in rows:
        assert 0 <= r["rollout/staleness/min"] <= r["rollout/staleness/max"] <= ratio
        assert "actor/pg_loss" in r
    import json

    samples = [json.loads(x) for x in (tmp_path / "logs" / "samples.jsonl").read_text().splitlines()]
    assert samples and all(0 <= s["step"] - s["policy_version"] <= ratio for s in samples)
    assert (tmp_path / "checkpoints" / "checkpoint-3" / "pipeline_state.pt").is_file()
    # resume: batches generated ahead of the checkpoint are regenerated from the saved scheduler state
    more = _run(
        tmp_path,
        "grpo_letter_echo",
        [*overrides, "max_steps=5", "resume_from_checkpoint=true"],
        tiny_model_dir,
    )
    assert [r["step"] for r in more] == [0, 1, 2, 3, 4]
    assert more[4]["rollout/staleness/max"] <= ratio
