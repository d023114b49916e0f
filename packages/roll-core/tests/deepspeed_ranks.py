"""One rank of a multi-process train run: `python deepspeed_ranks.py SPEC.json RANK`.

The spec names the model, the world size, the device (`cpu`: gloo; `cuda`: one GPU per rank, nccl), the
port and a list of runs (`hf_train` or `deepspeed_train` with a strategy_config); every rank trains its
equal share of the same batch for `steps` steps and writes `<out>/rank<R>.pt`: per run the metrics of each
step, seconds per step and the state dict (full on rank 0), plus this process's peak RSS (and peak GPU
memory on CUDA). Used by test_deepspeed*.py and bench/bench_deepspeed.py.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def batch(B: int, L: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    out = {
        "input_ids": torch.randint(0, 250, (B, L), generator=g),
        "attention_mask": torch.ones(B, L, dtype=torch.long),
        "response_mask": torch.zeros(B, L - 1),
    }
    out["response_mask"][:, L // 2 :] = 1
    out["advantages"] = torch.randn(B, L - 1, generator=g) * out["response_mask"]
    return out


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def role(spec: dict, run: dict):
    from roll.config import ModelArgs, StrategyArgs, TrainingArgs, WorkerConfig

    return WorkerConfig(
        model_args=ModelArgs(
            model_name_or_path=spec["model"], dtype=spec.get("dtype", "fp32"), attn_implementation="sdpa"
        ),
        training_args=TrainingArgs(
            learning_rate=1e-3,
            per_device_train_batch_size=spec.get("micro", 2),
            gradient_accumulation_steps=spec.get("ga", 2),
            max_grad_norm=1.0,
            max_steps=10,
        ),
        strategy_args=StrategyArgs(run["strategy"], run.get("config")),
        infer_batch_size=spec.get("micro", 2),
    )


def main(spec_path: str, rank: int) -> None:
    with open(spec_path) as f:
        spec = json.load(f)
    world = spec["world_size"]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(spec["port"]))
    import torch
    import torch.distributed as dist

    from roll.strategies.base import LossConfig
    from roll.strategies.deepspeed_strategy import collective_backend
    from roll.strategies.registry import load_strategy_class

    torch.set_num_threads(spec.get("threads", 1))
    device = "cpu" if spec.get("device", "cpu") == "cpu" else f"{spec['device']}:{rank}"
    dist.init_process_group(collective_backend(device), rank=rank, world_size=world)
    import transformers  # noqa: F401  (the runtime's imports belong to the baseline, not to the model's memory)

    if any(run["strategy"] == "deepspeed_train" for run in spec["runs"]):
        import deepspeed  # noqa: F401
    base_rss_mib = _rss_mib()
    full = batch(spec["batch"], spec["length"], spec.get("seed", 0))
    share = spec["batch"] // world
    mine = {k: v[rank * share : (rank + 1) * share] for k, v in full.items()}
    results = {}
    for run in spec["runs"]:
        cls = load_strategy_class(run["strategy"])
        strategy = cls(role(spec, run), seed=42, device=device, rank=rank, world_size=world)
        if hasattr(strategy, "on_process_group"):
            strategy.on_process_group()
        strategy.set_total_steps(10)
        built_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # loading's share of the peak
        metrics, seconds = [], []
        for _ in range(spec["steps"]):
            dist.barrier()
            t0 = time.perf_counter()
            metrics.append(strategy.train_step(mine, LossConfig()))
            seconds.append(time.perf_counter() - t0)
        state = strategy.state_dict() if run["strategy"] == "deepspeed_train" or rank == 0 else {}
        results[run["name"]] = {
            "metrics": metrics,
            "seconds": seconds,
            "state": state,
            "built_peak_mib": built_peak,
        }
        del strategy
    results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results["base_rss_mib"] = base_rss_mib
    if device != "cpu":
        results["peak_device_mib"] = torch.cuda.max_memory_allocated() / 2**20
    torch.save(results, os.path.join(spec["out"], f"rank{rank}.pt"))
    dist.destroy_process_group()


def launch(spec: dict, out_dir: str, timeout_s: float = 600) -> list[dict]:
    """Every rank of `spec` as its own process running this file; their results (roll.testing.launch_ranks)."""
    from roll.testing import launch_ranks

    return launch_ranks(__file__, spec, out_dir, timeout_s)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
