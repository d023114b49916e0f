"""deepspeed_train on CUDA with nccl (skipped without CUDA): the CPU equivalence test on GPUs.

Ranks = min(2, GPUs) (nccl needs one GPU per rank). Run by scripts/gpu-check.sh with a CUDA build of torch.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import yaml

pytest.importorskip("deepspeed")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parents[0] / "examples" / "config"


def _zero(name: str) -> dict:
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())[name]


def test_zero2_and_zero3_with_nccl_match_hf_train(tiny_model_dir, tmp_path):
    spec = importlib.util.spec_from_file_location("deepspeed_ranks", HERE / "deepspeed_ranks.py")
    ranks_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ranks_module)
    world = min(2, torch.cuda.device_count())
    run = {
        "model": str(tiny_model_dir),
        "device": "cuda",
        "world_size": world,
        "batch": 8,
        "length": 12,
        "steps": 2,
        "runs": [
            {"name": "hf", "strategy": "hf_train"},
            {"name": "zero2", "strategy": "deepspeed_train", "config": _zero("deepspeed_zero2")},
            {"name": "zero3", "strategy": "deepspeed_train", "config": _zero("deepspeed_zero3")},
            {"name": "offload", "strategy": "deepspeed_train", "config": _zero("deepspeed_zero3_cpuoffload")},
        ],
    }
    if world > 1:  # hf_train's multi-rank path sums CPU-side counts: compare ZeRO stages with each other
        run["runs"] = run["runs"][1:]
    ranks = ranks_module.launch(run, str(tmp_path), timeout_s=400)
    ref = "hf" if world == 1 else "zero2"
    for name in [r["name"] for r in run["runs"] if r["name"] != ref]:
        for step in range(run["steps"]):
            got, want = ranks[0][name]["metrics"][step], ranks[0][ref]["metrics"][step]
            for key in ("actor/pg_loss", "actor/grad_norm", "actor/lr"):
                assert got[key] == pytest.approx(want[key], rel=1e-3, abs=1e-5), (name, step, key)
        state, ref_state = ranks[0][name]["state"], ranks[0][ref]["state"]
        assert max((state[k] - ref_state[k]).abs().max().item() for k in ref_state) < 1e-3, name
