"""Env throughput the trainer sees: local envs vs the GEM API (sandbox and pooled modes) vs sandbox-served
envs, at 8, 64 and 256 parallel envs, through roll's own env manager and rollout scheduler.

    python integration/bench/bench_env_throughput.py --out bench-results/integration-env-throughput.json

Two parts, one real `rock-admin serve` (embedded defaults) for every ROCK-backed mode:
- fixed policy: the rollout loop with a policy that answers instantly (a seeded random move), so the
  figures are the env path's cost: env steps/s and the rollout thread's wait per env call;
- tiny model: real GRPO training steps of the demo's config (tiny random-init Qwen2) and the share of each
  step's wall time the rollout thread spends blocked on envs.
Medians over repeats (the first batch, which creates envs and sandboxes, is timed apart); ratios vs local
envs measured in the same run. Targets (issue 5): sandbox-served envs cost at most 2x the local envs' step
time at 64 envs; env waiting under 10% of a training step with the tiny model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rock_roll_integration.demo import CONFIG_DIR, TAG
from rock_roll_integration.envclock import EnvClock
from rock_roll_integration.envmodes import ENV_MODES, env_overrides

from rock_admin.testing import running_admin
from roll.agentic.env_manager import ChatFormatter, TrajEnvManager
from roll.agentic.pipeline import AgenticPipeline
from roll.agentic.scheduler import RolloutScheduler
from roll.config import load_and_validate
from roll.strategies.base import GenerationOutput

MOVES = ("Up", "Down", "Left", "Right")


def load_cfg(mode: str, url: str, out: Path, envs: int):
    """The demo's config with `envs` train envs (groups of 4, or 1 env per group below 4) in `mode`."""
    group = 4 if envs >= 4 else 1
    overrides = [
        f"output_dir={out}",
        "progress_bar=false",
        "max_steps=1000",  # never reaches the final checkpoint; steps are driven one by one
        f"rollout_batch_size={envs}",
        f"train_env_manager.num_env_groups={envs // group}",
        f"train_env_manager.group_size={group}",
        f"train_env_manager.num_groups_partition=[{envs // group}]",
        f"actor_train.training_args.per_device_train_batch_size={min(envs, 16)}",
        *env_overrides(TAG, mode, url),
    ]
    cfg, _, _ = load_and_validate(CONFIG_DIR, "demo_tiny", overrides)
    return cfg


def fixed_policy(tokenizer, seed: int = 0) -> Callable[[list[list[int]], list[int]], list[GenerationOutput]]:
    """An instant policy: a seeded random move in `<answer>` tags plus the end token, for every prompt."""
    rng = random.Random(seed)
    replies = {
        m: [
            *tokenizer(f"<answer>{m}</answer>", add_special_tokens=False)["input_ids"],
            tokenizer.eos_token_id,
        ]
        for m in MOVES
    }

    def generate(prompts: list[list[int]], budgets: list[int]) -> list[GenerationOutput]:
        outs = []
        for budget in budgets:
            ids = replies[rng.choice(MOVES)][:budget]
            outs.append(GenerationOutput(ids, [0.0] * len(ids), "stop"))
        return outs

    return generate


def bench_fixed(mode: str, url: str, envs: int, repeats: int, tmp: Path) -> dict[str, Any]:
    """Rollout batches of `envs` episodes with the instant policy: env steps/s and wait per env call."""
    from transformers import AutoTokenizer

    from roll.models.registry import resolve_pretrain

    cfg = load_cfg(mode, url, tmp / f"fixed-{mode}-{envs}", envs)
    tokenizer = AutoTokenizer.from_pretrained(resolve_pretrain(cfg.pretrain))
    mgr_cfg = cfg.train_env_manager
    manager = TrajEnvManager(
        ChatFormatter(tokenizer),
        cfg.sequence_length,
        fixed_policy(tokenizer),
        mgr_cfg.generating_args.max_new_tokens,
        mgr_cfg.env_timeout_s,
        max_workers=min(16, envs),  # what AgenticPipeline gives its managers
    )
    clock = EnvClock()
    clock.attach(manager)
    scheduler = RolloutScheduler(cfg, mgr_cfg, "train", manager, cfg.seed)
    rows = []
    try:
        for i in range(repeats + 1):
            before, t0 = clock.snapshot(), time.perf_counter()
            scheduler.get_batch(envs)
            wall, d = time.perf_counter() - t0, clock.snapshot() - before
            rows.append(
                {"wall_s": wall, "steps": d.steps, "resets": d.resets, "wait_s": d.wait_s, "first": i == 0}
            )
    finally:
        scheduler.close()
        manager.close()
    steady = [r for r in rows if not r["first"]]
    return {
        "mode": mode,
        "envs": envs,
        "first_batch_s": rows[0]["wall_s"],
        "env_steps_per_s": statistics.median(r["steps"] / r["wall_s"] for r in steady),
        "wait_per_call_ms": statistics.median(
            1000 * r["wait_s"] / max(1, r["steps"] + r["resets"]) for r in steady
        ),
        "wait_share": statistics.median(r["wait_s"] / r["wall_s"] for r in steady),
        "batch_s": statistics.median(r["wall_s"] for r in steady),
        "repeats": steady,
    }


def bench_train(mode: str, url: str, envs: int, steps: int, tmp: Path) -> dict[str, Any]:
    """Real GRPO steps of the tiny model over `envs` envs: step time and the share spent waiting on envs."""
    cfg = load_cfg(mode, url, tmp / f"train-{mode}-{envs}", envs)
    pipe = AgenticPipeline(cfg, stdout=False)
    clock = EnvClock()
    for manager in pipe.managers:
        clock.attach(manager)
    rows = []
    try:
        for step in range(1, steps + 2):  # from 1: step 0 would validate; the first step creates the envs
            before = clock.snapshot()
            metrics = pipe.step(step)
            d = clock.snapshot() - before
            total = metrics["time/step_total"]
            rows.append(
                {
                    "step_s": total,
                    "rollout_s": metrics["time/step_rollout"],
                    "wait_s": d.wait_s,
                    "steps": d.steps,
                    "first": step == 1,
                }
            )
    finally:
        pipe.close()
    steady = [r for r in rows if not r["first"]]
    return {
        "mode": mode,
        "envs": envs,
        "first_step_s": rows[0]["step_s"],
        "step_s": statistics.median(r["step_s"] for r in steady),
        "rollout_s": statistics.median(r["rollout_s"] for r in steady),
        "env_wait_s": statistics.median(r["wait_s"] for r in steady),
        "env_wait_share": statistics.median(r["wait_s"] / r["step_s"] for r in steady),
        "env_steps_per_s": statistics.median(r["steps"] / r["step_s"] for r in steady),
        "repeats": steady,
    }


def add_ratios(rows: list[dict[str, Any]], key: str) -> None:
    """`<key>_vs_local`: each row's figure over the local envs' figure at the same env count."""
    local = {r["envs"]: r[key] for r in rows if r["mode"] == "local"}
    for r in rows:
        if r["envs"] in local and local[r["envs"]] > 0:
            r[f"{key}_vs_local"] = r[key] / local[r["envs"]]


def table(title: str, rows: list[dict[str, Any]], cols: list[tuple[str, str, str]]) -> str:
    lines = [title, "  ".join(f"{h:>14}" for _, h, _ in cols)]
    for r in rows:
        lines.append("  ".join(f"{format(r[k], f) if k in r else '-':>14}" for k, _, f in cols))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument("--modes", nargs="+", choices=ENV_MODES, default=["local", "gem", "gem-pooled", "sandbox"])
    p.add_argument("--envs", nargs="+", type=int, default=[8, 64, 256], help="parallel envs (fixed policy)")
    p.add_argument("--repeats", type=int, default=3, help="timed batches per point (after one untimed)")
    p.add_argument("--train-envs", nargs="+", type=int, default=[8, 64], help="parallel envs (tiny model)")
    p.add_argument("--train-steps", type=int, default=2, help="timed training steps per point")
    args = p.parse_args(argv)
    scratch = Path(__file__).resolve().parents[2] / ".cache" / f"bench-env-throughput-{os.getpid()}"
    scratch.mkdir(parents=True, exist_ok=True)
    fixed: list[dict[str, Any]] = []
    train: list[dict[str, Any]] = []
    load_start = os.getloadavg()[0]
    with running_admin(scratch / "admin", auto_clear_seconds="3600") as admin:
        for envs in args.envs:
            for mode in args.modes:
                print(f"fixed policy: {mode} x {envs}", file=sys.stderr, flush=True)
                fixed.append(bench_fixed(mode, admin.url, envs, args.repeats, scratch))
        for envs in args.train_envs:
            for mode in args.modes:
                print(f"tiny model: {mode} x {envs}", file=sys.stderr, flush=True)
                train.append(bench_train(mode, admin.url, envs, args.train_steps, scratch))
    shutil.rmtree(scratch, ignore_errors=True)
    add_ratios(fixed, "wait_per_call_ms")
    add_ratios(fixed, "batch_s")
    add_ratios(train, "step_s")
    print(
        table(
            "fixed policy (env cost only): medians over repeats",
            fixed,
            [
                ("mode", "mode", ""),
                ("envs", "envs", ""),
                ("env_steps_per_s", "env steps/s", ".0f"),
                ("wait_per_call_ms", "wait/call ms", ".3f"),
                ("wait_per_call_ms_vs_local", "x local", ".1f"),
                ("batch_s", "batch s", ".3f"),
                ("batch_s_vs_local", "batch x local", ".2f"),
                ("wait_share", "env wait share", ".1%"),
                ("first_batch_s", "first batch s", ".2f"),
            ],
        )
    )
    print()
    print(
        table(
            "tiny model GRPO steps: medians over steps",
            train,
            [
                ("mode", "mode", ""),
                ("envs", "envs", ""),
                ("step_s", "step s", ".2f"),
                ("step_s_vs_local", "step x local", ".2f"),
                ("env_wait_s", "env wait s", ".2f"),
                ("env_wait_share", "env wait share", ".1%"),
                ("env_steps_per_s", "env steps/s", ".1f"),
                ("first_step_s", "first step s", ".1f"),
            ],
        )
    )
    result = {
        "bench": "integration/env_throughput",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg()[0],
        },
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "fixed_policy": fixed,
        "tiny_model": train,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
