"""megatron_train on CUDA (skipped without it; run by scripts/gpu-check.sh): no CPU shim anywhere.

One GPU: log-probs and GRPO train steps against hf_train on the same GPU, plain and with full recompute.
Two GPUs: TP=2 with nccl against hf_train on the whole batch (tests/megatron_ranks.py, device cuda).
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch

from roll.config import ModelArgs, StrategyArgs, TrainingArgs, WorkerConfig
from roll.strategies.base import LossConfig

pytest.importorskip(
    "megatron.core", reason="megatron-core is not installed: `pip install roll-core[megatron]`"
)
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

HERE = Path(__file__).resolve().parent


def _role(path, strategy: str, strategy_config: dict | None = None, micro: int = 2) -> WorkerConfig:
    return WorkerConfig(
        model_args=ModelArgs(
            model_name_or_path=str(path),
            dtype="fp32",
            attn_implementation="eager",
            disable_gradient_checkpointing=True,
        ),
        training_args=TrainingArgs(
            learning_rate=1e-3,
            per_device_train_batch_size=micro,
            gradient_accumulation_steps=2,
            max_grad_norm=1.0,
            max_steps=4,
        ),
        strategy_args=StrategyArgs(strategy_name=strategy, strategy_config=strategy_config),
        infer_batch_size=micro,
    )


def _batch(rows: int = 8, length: int = 12) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 250, (rows, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1, length - 3 :] = 0
    response = mask[:, 1:].clone()
    response[:, : length // 2] = 0
    adv = torch.randn(rows, length - 1, generator=g) * response
    return {"input_ids": ids, "attention_mask": mask, "response_mask": response, "advantages": adv}


@pytest.mark.parametrize("recompute", [None, "full"])
def test_one_gpu_matches_hf_train(tiny_model_dir, recompute):
    from roll.strategies.hf import HfTrainStrategy
    from roll.strategies.megatron_strategy import MegatronTrainStrategy

    sc = {"tensor_model_parallel_size": 1, "recompute_granularity": recompute}
    mg = MegatronTrainStrategy(_role(tiny_model_dir, "megatron_train", sc), seed=0, device="cuda:0")
    hf = HfTrainStrategy(_role(tiny_model_dir, "hf_train"), seed=0, device="cuda:0")
    batch = _batch()
    ref = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    diff = (mg.compute_log_probs(ref) - hf.compute_log_probs(ref)).abs().max().item()
    print(f"megatron vs HF log-prob max |diff| on CUDA (recompute={recompute}): {diff:.2e}")
    assert diff < 1e-4
    for _ in range(2):
        got, want = (
            mg.train_step(copy.deepcopy(batch), LossConfig()),
            hf.train_step(copy.deepcopy(batch), LossConfig()),
        )
        for key in ("actor/pg_loss", "actor/grad_norm", "actor/lr"):
            assert got[key] == pytest.approx(want[key], rel=1e-3, abs=1e-5), key
    state, want_state = mg.state_dict(), hf.state_dict()
    assert max((state[k] - want_state[k]).abs().max().item() for k in want_state) < 1e-3


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="TP=2 needs two GPUs")
def test_tp2_on_two_gpus_matches_hf_train(tiny_model_dir, tmp_path):
    from roll.strategies.hf import HfTrainStrategy

    spec = importlib.util.spec_from_file_location("megatron_ranks", HERE / "megatron_ranks.py")
    ranks_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ranks_module)
    batch = _batch()
    torch.save(batch, tmp_path / "batch.pt")
    run = {
        "model": str(tiny_model_dir),
        "world_size": 2,
        "device": "cuda",
        "batch": str(tmp_path / "batch.pt"),
        "micro": 2,
        "ga": 2,
        "steps": 2,
        "strategy_config": {"tensor_model_parallel_size": 2},
    }
    ranks = ranks_module.launch(run, str(tmp_path))
    hf = HfTrainStrategy(_role(tiny_model_dir, "hf_train", micro=4), seed=0, device="cuda:0")
    ref = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    lp = torch.cat([r["log_probs"] for r in ranks])
    assert (lp - hf.compute_log_probs(ref)).abs().max().item() < 1e-4
    for step in range(2):
        want = hf.train_step(copy.deepcopy(batch), LossConfig())
        for r in ranks:
            assert r["metrics"][step]["actor/grad_norm"] == pytest.approx(want["actor/grad_norm"], rel=1e-3)
    want_state = hf.state_dict()
    for r in ranks:
        assert max((r["state"][k] - want_state[k]).abs().max().item() for k in want_state) < 1e-3
