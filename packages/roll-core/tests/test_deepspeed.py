"""deepspeed_train on CPU/gloo with the tiny Qwen2: ZeRO-2/3 against hf_train, offload, checkpoints, errors."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch
import yaml

from roll.config import ModelArgs, StrategyArgs, TrainingArgs, WorkerConfig
from roll.strategies.base import LossConfig

pytest.importorskip("deepspeed")

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parents[0] / "examples" / "config"


def _ranks_module():
    spec = importlib.util.spec_from_file_location("deepspeed_ranks", HERE / "deepspeed_ranks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _zero(name: str) -> dict:
    """ROLL's include as shipped (`deepspeed_zero3` …), `auto` values and all."""
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())[name]


@pytest.mark.slow
def test_zero2_and_zero3_on_two_gloo_ranks_match_hf_train_dp2(tiny_model_dir, tmp_path):
    """Same batch split over 2 gloo ranks: per-step losses, grad norms, lr and final weights agree."""
    spec = {
        "model": str(tiny_model_dir),
        "world_size": 2,
        "batch": 8,
        "length": 12,
        "steps": 2,
        "runs": [
            {"name": "hf", "strategy": "hf_train"},
            {"name": "zero2", "strategy": "deepspeed_train", "config": _zero("deepspeed_zero2")},
            {"name": "zero3", "strategy": "deepspeed_train", "config": _zero("deepspeed_zero3")},
        ],
    }
    ranks = _ranks_module().launch(spec, str(tmp_path), timeout_s=400)
    ref_state = ranks[0]["hf"]["state"]
    for name in ("zero2", "zero3"):
        for step in range(spec["steps"]):
            a, b = (ranks[r][name]["metrics"][step] for r in (0, 1))
            assert a["actor/grad_norm"] == b["actor/grad_norm"]  # one global norm
            for r in (0, 1):
                got, want = ranks[r][name]["metrics"][step], ranks[r]["hf"]["metrics"][step]
                for key in ("actor/pg_loss", "actor/grad_norm", "actor/lr", "actor/backward_steps"):
                    assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), (name, step, r, key)
        state = ranks[0][name]["state"]
        assert set(state) == set(ref_state)
        assert max((state[k] - ref_state[k]).abs().max().item() for k in ref_state) < 1e-4, name
    assert ranks[1]["zero3"]["state"] == {}  # only rank 0 keeps the gathered copy


def _role(path, strategy: str, strategy_config: dict | None = None) -> WorkerConfig:
    return WorkerConfig(
        model_args=ModelArgs(model_name_or_path=str(path), dtype="fp32", attn_implementation="sdpa"),
        training_args=TrainingArgs(
            learning_rate=1e-3,
            per_device_train_batch_size=2,
            gradient_accumulation_steps=2,
            max_grad_norm=1.0,
            max_steps=10,
        ),
        strategy_args=StrategyArgs(strategy, copy.deepcopy(strategy_config)),
        infer_batch_size=4,
    )


def _strategy(path, zero: str | None):
    from roll.strategies.registry import load_strategy_class

    name = "hf_train" if zero is None else "deepspeed_train"
    s = load_strategy_class(name)(_role(path, name, zero and _zero(zero)), seed=42)
    s.set_total_steps(10)
    return s


def _close(got: dict, want: dict) -> None:
    for key in ("actor/pg_loss", "actor/grad_norm", "actor/lr", "actor/clipfrac", "actor/backward_steps"):
        assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), key


def test_zero3_cpu_offload_trains_like_hf_train(tiny_model_dir):
    ranks = _ranks_module()
    batch = ranks.batch(8, 12, seed=1)
    hf, ds = _strategy(tiny_model_dir, None), _strategy(tiny_model_dir, "deepspeed_zero3_cpuoffload")
    assert ds.ds_config["zero_force_ds_cpu_optimizer"] is False  # torch AdamW on CPU, no compiled op
    before = ds.compute_log_probs(batch)
    for _ in range(2):
        _close(ds.train_step(batch, LossConfig()), hf.train_step(batch, LossConfig()))
    after = ds.compute_log_probs(batch)
    assert torch.allclose(after, hf.compute_log_probs(batch), atol=1e-4)
    moved = ((after - before) * batch["advantages"]).sum()
    assert moved > 0  # log-probs rose where the advantage is positive


def test_zero3_checkpoint_resumes_and_exports_hf(tiny_model_dir, tmp_path):
    from roll.strategies.hf import HfInferStrategy

    ranks = _ranks_module()
    batch = ranks.batch(8, 12, seed=2)
    a = _strategy(tiny_model_dir, "deepspeed_zero3")
    a.train_step(batch, LossConfig())
    a.save_checkpoint(str(tmp_path / "ck"))
    straight = a.train_step(batch, LossConfig())
    assert (tmp_path / "ck" / "deepspeed" / "checkpoint").is_dir()  # DeepSpeed's own engine checkpoint
    b = _strategy(tiny_model_dir, "deepspeed_zero3")
    b.load_checkpoint(str(tmp_path / "ck"))
    assert b.global_step == 2  # one mini-batch step of 4 samples per micro 2 × GA 2, twice
    resumed = b.train_step(batch, LossConfig())
    _close(resumed, straight)
    assert resumed["actor/pg_loss"] == straight["actor/pg_loss"]
    # the HF export is a plain model folder: hf_infer loads it and sees the checkpointed weights
    infer = HfInferStrategy(_role(tmp_path / "ck" / "model", "hf_infer"))
    c = _strategy(tiny_model_dir, "deepspeed_zero3")
    c.load_checkpoint(str(tmp_path / "ck"))
    assert torch.allclose(infer.compute_log_probs(batch), c.compute_log_probs(batch), atol=1e-5)
    # weight sync: the gathered state dict loads strictly into hf_infer
    infer.load_state_dict(b.state_dict())
    assert torch.allclose(infer.compute_log_probs(batch), b.compute_log_probs(batch), atol=1e-5)


def test_deepspeed_critic_matches_hf_critic(tiny_model_dir):
    from roll.strategies.hf import HfCriticStrategy
    from roll.strategies.registry import load_strategy_class

    role = _role(tiny_model_dir, "deepspeed_train", _zero("deepspeed_zero3"))
    critic = load_strategy_class("deepspeed_train", critic=True)(role, seed=0)
    ref = HfCriticStrategy(_role(tiny_model_dir, "hf_train"), seed=0)  # same seed: same value head
    for s in (critic, ref):
        s.set_total_steps(10)
    batch = _ranks_module().batch(4, 10, seed=3)
    mask = batch["response_mask"]
    values = ref.compute_values(batch) * mask
    assert torch.allclose(critic.compute_values(batch) * mask, values, atol=1e-5)
    full = {**batch, "values": values, "returns": torch.ones_like(mask) * mask}
    for _ in range(2):
        got, want = critic.train_step(full, LossConfig()), ref.train_step(full, LossConfig())
        for key in ("critic/loss", "critic/grad_norm", "critic/vpred"):
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), key
    assert "v_head.weight" in critic.state_dict()


def test_registry_names_the_extra_when_deepspeed_is_missing(monkeypatch):
    import importlib.util as iu

    from roll.strategies import registry

    real = iu.find_spec
    monkeypatch.setattr(
        registry.importlib.util, "find_spec", lambda n, *a: None if n == "deepspeed" else real(n, *a)
    )
    with pytest.raises(registry.StrategyUnavailable, match=r"pip install roll-core\[deepspeed\]"):
        registry.load_strategy_class("deepspeed_train")


def test_config_errors_name_the_deepspeed_key(tiny_model_dir, monkeypatch):
    from roll.config import ConfigError, load_and_validate

    tiny = HERE.parents[0] / "examples" / "tiny-cpu"
    base = [f"pretrain={tiny_model_dir}"]
    sc = "actor_train.strategy_args.strategy_config"
    with pytest.raises(ConfigError) as info:
        load_and_validate(
            tiny,
            "grpo_letter_echo_deepspeed",
            [
                *base,
                f"+{sc}.zero_optimisation=1",
                f"+{sc}.zero_optimization.stage3_prefetch_bucket_sise=1",
                f"{sc}.train_batch_size=5",
                "actor_train.device_mapping=[0,1]",
                "actor_train.world_size=3",
            ],
        )
    problems = dict(info.value.problems)
    assert "did you mean 'zero_optimization'" in problems[f"{sc}.zero_optimisation"]
    assert "Extra inputs" in problems[f"{sc}.zero_optimization.stage3_prefetch_bucket_sise"]
    assert "contradicts device_mapping (2 workers)" in problems["actor_train.world_size"]
    assert "world_size 2" in problems[f"{sc}.train_batch_size"]
    with pytest.raises(ConfigError) as info:
        load_and_validate(tiny, "grpo_letter_echo_deepspeed", [*base, f"{sc}.train_batch_size=5"])
    assert "train_batch_size" in str(info.value) and "world_size 1" in str(info.value)
    with pytest.raises(
        ConfigError, match=r"`auto` is not resolved by roll-core for: zero_optimization.sub_group"
    ):
        load_and_validate(
            tiny, "grpo_letter_echo_deepspeed", [*base, f"+{sc}.zero_optimization.sub_group_size=auto"]
        )
    with pytest.raises(ConfigError, match=r"strategy_config.optimizer: roll-core drives torch AdamW"):
        load_and_validate(tiny, "grpo_letter_echo_deepspeed", [*base, f"+{sc}.optimizer={{type: AdamW}}"])
    # offload: the model states must fit in host memory (estimated before any worker starts)
    import psutil

    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("M", (), {"available": 1024})())
    with pytest.raises(ConfigError, match=r"CPU offload \(optimizer\+param\) needs ~"):
        load_and_validate(
            tiny,
            "grpo_letter_echo_deepspeed",
            [*base, "actor_train.strategy_args.strategy_config=${deepspeed_zero3_cpuoffload}"],
        )


@pytest.mark.slow
def test_pipeline_trains_with_zero3_and_resumes(tmp_path, tiny_model_dir):
    """The step loop on deepspeed_train: weight sync from ZeRO-3 every step, checkpoint, resume."""
    from roll.agentic.pipeline import AgenticPipeline
    from roll.agentic.tracking import read_jsonl
    from roll.config import load_and_validate

    tiny = HERE.parents[0] / "examples" / "tiny-cpu"
    common = [
        f"pretrain={tiny_model_dir}",
        "progress_bar=false",
        "max_steps=4",
        "save_steps=2",
        "eval_steps=100",
        "rollout_batch_size=16",
        "train_env_manager.num_env_groups=4",
        "actor_train.training_args.per_device_train_batch_size=4",
        "actor_train.training_args.gradient_accumulation_steps=2",
        "actor_train.training_args.lr_scheduler_type=cosine",
    ]

    def run(out, extra=(), stop_at=None):
        cfg, _, _ = load_and_validate(
            tiny, "grpo_letter_echo_deepspeed", [f"output_dir={out}", *common, *extra]
        )
        p = AgenticPipeline(cfg, stdout=False)
        try:
            p.run(stop_at=stop_at)
        finally:
            p.close()
        return read_jsonl(Path(cfg.logging_dir) / "metrics.jsonl")

    straight = run(tmp_path / "a")
    run(tmp_path / "b", stop_at=3)
    assert (tmp_path / "b" / "checkpoints" / "checkpoint-2" / "actor_train" / "deepspeed").is_dir()
    resumed = run(tmp_path / "b", ["resume_from_checkpoint=true"])
    assert [r["step"] for r in resumed] == [0, 1, 2, 3]
    for key in ("rollout/score/mean", "actor/pg_loss", "actor/grad_norm", "actor/lr", "actor/entropy"):
        assert resumed[3][key] == pytest.approx(straight[3][key], rel=1e-4, abs=1e-6), key


# ROLL's agentic_val_sokoban.yaml, unchanged, on this CPU machine: only the model, placement, sizes and
# output paths change (the README lists why). Outputs are relative to the run's working directory.
SOKOBAN_OVERRIDES = [
    "pretrain=builtin:tiny-qwen2",
    "reward_pretrain=builtin:tiny-qwen2",
    "actor_train.device_mapping=null",
    "actor_train.world_size=2",
    "actor_train.model_args.attn_implementation=sdpa",
    "actor_infer.strategy_args.strategy_name=hf_infer",
    "actor_infer.device_mapping=null",
    "actor_infer.world_size=1",
    "reference.device_mapping=null",
    "reference.world_size=1",
    "reference.model_args.attn_implementation=sdpa",
    "max_steps=5",
    "save_steps=2",
    "eval_steps=100",
    "rollout_batch_size=8",
    "train_env_manager.num_env_groups=8",
    "train_env_manager.num_groups_partition=[8]",
    "val_batch_size=4",
    "val_env_manager.num_env_groups=4",
    "val_env_manager.num_groups_partition=[1,1,1,1]",
    "max_tokens_per_step=16",
    "output_dir=out",
    "logging_dir=out/logs",
    "render_save_dir=out/render",
    "checkpoint_config.output_dir=out/checkpoints",
    "track_with=jsonl",
    "progress_bar=false",
]


@pytest.mark.ray
@pytest.mark.slow
def test_rolls_sokoban_config_on_zero3_resumes_after_kill_9(tmp_path):
    """ROLL's own file with ZeRO-3 on 2 gloo ranks (Ray); kill -9 after a checkpoint; resume finishes."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from roll.agentic.tracking import read_jsonl

    ref = HERE.parents[0] / "examples" / "qwen2.5-0.5B-agentic"
    cmd = [sys.executable, "-m", "roll", "--config_path", str(ref), "--config_name", "agentic_val_sokoban"]
    cmd += SOKOBAN_OVERRIDES
    metrics = tmp_path / "out" / "logs" / "metrics.jsonl"
    with open(tmp_path / "first.log", "w") as log:
        # own session: kill -9 takes the driver and the Ray processes it started
        run = subprocess.Popen(
            cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline, steps = time.monotonic() + 400, []
        try:
            while time.monotonic() < deadline and run.poll() is None:
                if metrics.is_file():
                    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
                if 3 in steps and (tmp_path / "out" / "checkpoints" / "checkpoint-2").is_dir():
                    break
                time.sleep(0.5)
        finally:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert 3 in steps, (tmp_path / "first.log").read_text()[-3000:]
    before = read_jsonl(metrics)
    ck = tmp_path / "out" / "checkpoints" / "checkpoint-2" / "actor_train"
    assert (ck / "deepspeed" / "checkpoint").is_dir() and (ck / "model" / "config.json").is_file()
    done = subprocess.run(
        [*cmd, "resume_from_checkpoint=true"], cwd=tmp_path, capture_output=True, text=True, timeout=400
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    after = read_jsonl(metrics)
    assert [r["step"] for r in after] == [0, 1, 2, 3, 4]
    # step 3 ran twice: before the kill and after resuming from checkpoint-2; the same numbers
    for key in ("rollout/score/mean", "actor/pg_loss", "actor/grad_norm", "actor/lr", "actor/entropy"):
        assert after[3][key] == pytest.approx(before[3][key], rel=1e-4, abs=1e-6), key
