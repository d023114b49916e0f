"""One rank of a 2-process megatron_train run: `python megatron_ranks.py SPEC.json RANK`.

On CPU (gloo) it goes through the TEST-ONLY CPU shim (megatron_cpu_shim.py); `device: cuda` uses one GPU
per rank with nccl and no shim. Each rank gets its share of one batch (as the
pipeline's data-parallel split hands it out), computes log-probs, trains `steps` steps with a checkpoint
after the first, then reloads that checkpoint and repeats the second step. Writes `<out>/rank<R>.pt`:
log-probs, per-step metrics, the resumed step's metrics and the final HF state (every rank).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sys


def main(spec_path: str, rank: int) -> None:
    import megatron_cpu_shim as shim
    import torch
    import torch.distributed as dist

    from roll.config import ModelArgs, StrategyArgs, TrainingArgs, WorkerConfig
    from roll.strategies.base import LossConfig

    with open(spec_path) as f:
        spec = json.load(f)
    world = spec["world_size"]
    cuda = spec.get("device", "cpu") == "cuda"  # one GPU per rank, nccl, no shim
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(spec["port"]))
    torch.set_num_threads(1)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    batch = torch.load(spec["batch"], weights_only=True)
    rows = batch["input_ids"].shape[0] // world
    mine = {k: v[rank * rows : (rank + 1) * rows] for k, v in batch.items()}
    sc = spec["strategy_config"]
    role = WorkerConfig(
        model_args=ModelArgs(
            model_name_or_path=spec["model"],
            dtype="fp32",
            attn_implementation="eager",
            disable_gradient_checkpointing=True,
        ),
        training_args=TrainingArgs(
            learning_rate=1e-3,
            per_device_train_batch_size=spec["micro"],
            gradient_accumulation_steps=spec["ga"],
            max_grad_norm=1.0,
            max_steps=4,
        ),
        strategy_args=StrategyArgs(strategy_name="megatron_train", strategy_config=sc),
        infer_batch_size=spec["micro"],
    )
    from roll.strategies.megatron_strategy import MegatronTrainStrategy

    with (
        contextlib.nullcontext() if cuda else shim.megatron_on_cpu(tp=sc["tensor_model_parallel_size"]) as mp
    ):
        if mp is not None:
            shim.cpu_strategy(mp)
        device = f"cuda:{rank}" if cuda else "cpu"
        strategy = MegatronTrainStrategy(role, seed=0, device=device, rank=rank, world_size=world)
        strategy.on_process_group()  # what Worker.init_process_group calls once the group exists
        out = {"log_probs": strategy.compute_log_probs(mine), "metrics": []}
        loss = LossConfig()
        ckpt = os.path.join(spec["out"], "checkpoint")
        for step in range(spec["steps"]):
            out["metrics"].append(strategy.train_step(copy.deepcopy(mine), loss))
            if step == 0:
                strategy.save_checkpoint(ckpt)
        out["state"] = strategy.state_dict()
        strategy.load_checkpoint(ckpt)
        out["resumed"] = strategy.train_step(copy.deepcopy(mine), loss)
        out["resumed_state"] = strategy.state_dict()
    torch.save(out, os.path.join(spec["out"], f"rank{rank}.pt"))
    dist.destroy_process_group()


def launch(spec: dict, out_dir: str, timeout_s: float = 400) -> list[dict]:
    """Every rank of `spec` as its own process running this file; their results (roll.testing.launch_ranks)."""
    from roll.testing import launch_ranks

    return launch_ranks(__file__, spec, out_dir, timeout_s)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
