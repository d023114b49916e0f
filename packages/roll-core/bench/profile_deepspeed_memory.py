"""Where a train rank's host memory goes, phase by phase: hf_train DP-2 vs deepspeed_train ZeRO-2 / ZeRO-3.

Each configuration runs in a fresh pair of gloo rank processes (`python profile_deepspeed_memory.py SPEC RANK`
is one rank). Per phase a rank resets its RSS high-water mark (`5` into /proc/self/clear_refs) and records
VmRSS at the end and VmHWM (the phase's peak): imports (torch, transformers, deepspeed), model load,
`deepspeed.initialize` (hf_train: its optimizer), each train step, the weight-sync state dict, and RSS after
`malloc_trim`. After the engine is built and after the steps it also sums the bytes of every live tensor
storage (by owner: module parameters and their ZeRO-3 partitions, gradients, optimizer state, each ZeRO
optimizer attribute), and prints DeepSpeed's own estimate of the ZeRO-3 model states.

    python packages/roll-core/bench/profile_deepspeed_memory.py --model smollm2 --steps 2
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MIB = 2**20


def _status() -> dict[str, float]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) / 1024
    return out


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


class Phases:
    """Records (name, rss at end, peak during) for consecutive phases of this process."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        _reset_peak()

    def mark(self, name: str) -> None:
        s = _status()
        self.rows.append({"phase": name, "rss_mib": s["VmRSS"], "peak_mib": s["VmHWM"]})
        _reset_peak()


def _storages(obj, seen: set, depth: int = 0) -> int:
    """Bytes of the tensor storages reachable from `obj` (lists, dicts, tensors' ds_tensor) not yet in `seen`."""
    import torch

    total = 0
    if isinstance(obj, torch.Tensor):
        st = obj.untyped_storage()
        key = st.data_ptr()
        if st.nbytes() and key not in seen:
            seen.add(key)
            total += st.nbytes()
        ds = getattr(obj, "ds_tensor", None)
        if ds is not None:
            total += _storages(ds, seen, depth + 1)
    elif depth < 4 and isinstance(obj, (list, tuple)):
        total += sum(_storages(x, seen, depth + 1) for x in obj)
    elif depth < 4 and isinstance(obj, dict):
        total += sum(_storages(x, seen, depth + 1) for x in obj.values())
    elif depth < 4 and hasattr(obj, "buffer") and type(obj).__name__.endswith("Bucket"):
        total += _storages(obj.buffer, seen, depth + 1)
    return total


def tensor_accounting(strategy) -> dict[str, float]:
    """MiB of live tensor storages by owner; each storage counted once, under the first owner that reaches it."""
    import torch

    gc.collect()
    seen: set = set()
    module = strategy.engine.module if getattr(strategy, "engine", None) else strategy.model
    params = list(module.parameters())
    out = {
        "params (module .data)": _storages([p.data for p in params], seen),
        "params (ZeRO-3 ds_tensor partitions)": _storages(
            [p.ds_tensor for p in params if hasattr(p, "ds_tensor")], seen
        ),
        "grads (.grad)": _storages([p.grad for p in params if p.grad is not None], seen),
    }
    opt = strategy.optimizer
    inner = getattr(opt, "optimizer", None)
    torch_opt = inner if isinstance(inner, torch.optim.Optimizer) else opt
    if isinstance(torch_opt, torch.optim.Optimizer):
        out["torch optimizer state (exp_avg, exp_avg_sq)"] = _storages(list(torch_opt.state.values()), seen)
    if torch_opt is not opt:
        for name, value in sorted(vars(opt).items()):
            b = _storages(value, seen)
            if b:
                out[f"ZeRO optimizer .{name}"] = b
    everything = _storages([o for o in gc.get_objects() if isinstance(o, torch.Tensor)], seen)
    out["other live tensors"] = everything
    out = {k: v / MIB for k, v in out.items()}
    out["total"] = sum(out.values())
    return out


def _mallinfo() -> dict[str, float]:
    """glibc heap: bytes in use vs free-but-held (fragmentation) and mmapped."""

    class Info(ctypes.Structure):
        names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
        _fields_ = [(n, ctypes.c_size_t) for n in names.split()]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Info
    i = libc.mallinfo2()
    return {
        "heap_mib": i.arena / MIB,
        "heap_in_use_mib": i.uordblks / MIB,
        "heap_free_mib": i.fordblks / MIB,
        "mmapped_mib": i.hblkhd / MIB,
    }


def rank_main(spec_path: str, rank: int) -> None:
    spec = json.loads(Path(spec_path).read_text())
    world = spec["world_size"]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(spec["port"]))
    phases = Phases()
    import deepspeed
    import torch
    import torch.distributed as dist
    import transformers  # noqa: F401  (imported by every configuration: part of the baseline)

    sys.path.insert(0, str(HERE.parent / "tests"))
    import deepspeed_ranks

    from roll.strategies.base import LossConfig
    from roll.strategies.deepspeed_strategy import collective_backend
    from roll.strategies.registry import load_strategy_class

    torch.set_num_threads(1)
    dist.init_process_group(collective_backend("cpu"), rank=rank, world_size=world)
    phases.mark("imports")
    run = spec["run"]
    report: dict = {}
    real_initialize = deepspeed.initialize

    def initialize(*args, **kwargs):
        phases.mark("model load")
        report["mallinfo_after_load"] = _mallinfo()
        return real_initialize(*args, **kwargs)

    deepspeed.initialize = initialize
    cls = load_strategy_class(run["strategy"])
    strategy = cls(deepspeed_ranks.role(spec, run), seed=42, device="cpu", rank=rank, world_size=world)
    if hasattr(strategy, "on_process_group"):
        strategy.on_process_group()
    strategy.set_total_steps(10)
    phases.mark("model load + optimizer" if run["strategy"] == "hf_train" else "deepspeed.initialize")
    report["tensors_after_init_mib"] = tensor_accounting(strategy)
    full = deepspeed_ranks.batch(spec["batch"], spec["length"], 0)
    share = spec["batch"] // world
    mine = {k: v[rank * share : (rank + 1) * share] for k, v in full.items()}
    seconds = []
    for step in range(spec["steps"]):
        dist.barrier()
        _reset_peak()
        t0 = time.perf_counter()
        strategy.train_step(mine, LossConfig())
        seconds.append(time.perf_counter() - t0)
        phases.mark(f"train step {step}")
    report["tensors_after_steps_mib"] = tensor_accounting(strategy)
    report["mallinfo_after_steps"] = _mallinfo()
    if run["strategy"] == "deepspeed_train" or rank == 0:
        state = strategy.state_dict()
        phases.mark("state_dict (weight sync)")
        del state
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    phases.mark("after malloc_trim")
    report.update(phases=phases.rows, seconds=seconds)
    if getattr(strategy, "stage", 0) == 3 and rank == 0:
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

        module = strategy.engine.module
        total = sum(getattr(p, "ds_numel", p.numel()) for p in module.parameters())
        largest = max(getattr(p, "ds_numel", p.numel()) for p in module.parameters())
        _cpu, per_rank, _ = estimate_zero3_model_states_mem_needs(
            total, largest, num_gpus_per_node=world, num_nodes=1, cpu_offload=False, cpu_offload_params=False
        )
        report["ds_estimate"] = {
            "params": total,
            "largest_layer": largest,
            "deepspeed_per_rank_mib (mixed precision, 18 B/param)": per_rank / MIB,
            "fp32_per_rank_mib (16 B/param / world + largest layer)": (16 * total / world + 4 * largest)
            / MIB,
        }
    Path(spec["out"], f"rank{rank}.json").write_text(json.dumps(report, indent=1))
    torch.save({}, os.path.join(spec["out"], f"rank{rank}.pt"))  # what launch_ranks collects
    dist.destroy_process_group()


RUN_NAMES = ("hf_dp2", "zero2", "zero3")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["tiny", "smollm2"], default="tiny")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--runs", default=",".join(RUN_NAMES))
    parser.add_argument("--zero3", default="{}", help="JSON merged into ZeRO-3's zero_optimization")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    import bench_deepspeed

    from roll.testing import launch_ranks

    folder = bench_deepspeed.model_folder(args.model)
    base = {"model": folder, "world_size": 2, "batch": args.batch, "length": args.length, "steps": args.steps}
    results = {}
    for name in args.runs.split(","):
        run = dict(bench_deepspeed.RUNS[name])
        if name == "zero3":
            run["config"] = {**run["config"]}
            run["config"]["zero_optimization"] = {
                **run["config"]["zero_optimization"],
                **json.loads(args.zero3),
            }
        with tempfile.TemporaryDirectory(prefix="prof-ds-") as tmp:
            launch_ranks(__file__, {**base, "run": run}, tmp, timeout_s=1800)
            results[name] = [json.loads(Path(tmp, f"rank{r}.json").read_text()) for r in range(2)]
        print(f"== {name}")
        for row in results[name][0]["phases"]:
            print(f"  {row['phase']:28} rss {row['rss_mib']:7.0f}  peak {row['peak_mib']:7.0f}")
        for key in ("tensors_after_init_mib", "tensors_after_steps_mib"):
            print(f"  {key}:")
            for k, v in results[name][0][key].items():
                if v >= 1:
                    print(f"    {k:58} {v:8.1f}")
        for key in ("mallinfo_after_load", "mallinfo_after_steps", "ds_estimate"):
            if key in results[name][0]:
                print(f"  {key}: {results[name][0][key]}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1].endswith(".json"):
        rank_main(sys.argv[1], int(sys.argv[2]))
    else:
        sys.exit(main())
