"""Sokoban: gem-envs against GEM (gem-llm 0.1.0) on the same machine, in the same run.

Measures reset latency (p50/p99 over seeds), single-thread step throughput on valid moves, and the levels
themselves: the share solvable within the turn limit and the mean optimal solution length, both found by
gem-envs' exact solver (on GEM's levels too: the peer process hands back its room_fixed/room_state).

GEM runs in its own virtual environment (created on first use at .venv-peers/gem, which needs network
access to PyPI), driven through a small measuring snippet whose JSON comes back on stdout.

    python bench_vs_gem.py --out bench-results/sokoban.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import venv
from pathlib import Path

import gem_envs
from gem_envs.envs.sokoban.level import DIRECTIONS, OPPOSITE, Level, neighbours
from gem_envs.envs.sokoban.solver import solve

ROOT = Path(__file__).resolve().parents[3]
PEER_DIR = ROOT / ".venv-peers" / "gem"
GEM_REQUIREMENT = "gem-llm==0.1.0"
# Presets whose levels we describe; GEM has the first two (its -random mixes in 8x8 rooms with 5 boxes).
OUR_PRESETS = (
    "game:Sokoban-v0-easy",
    "game:Sokoban-v0-hard",
    "game:Sokoban-v0-random",
    "SimpleSokoban",
    "LargerSokoban",
    "SokobanDifferentGridVocab",
    "sokoban",
)
TARGETS = {
    "hard_reset_p50_ms": 5.0,
    "hard_reset_p99_ms": 50.0,
    "easy_reset_p50_ms": 1.0,
    "easy_steps_per_s": 100_000,
}

# Runs under GEM's interpreter. Argument: JSON {"seeds", "hard_budget_s", "steps"}; prints one JSON line.
PEER_SNIPPET = r"""
import json, sys, time
import gem

args = json.loads(sys.argv[1])

def resets(env_id, seeds, budget_s):
    t0 = time.perf_counter()
    env = gem.make(env_id)  # GEM's constructor already generates one (unseeded) level
    construct_s = time.perf_counter() - t0
    times, levels = [], []
    start = time.perf_counter()
    for seed in seeds:
        if time.perf_counter() - start > budget_s:
            break
        t0 = time.perf_counter()
        env.reset(seed=seed)
        times.append(time.perf_counter() - t0)
        levels.append({"fixed": env.room_fixed.tolist(), "state": env.room_state.tolist(), "max_turns": env.max_turns})
    return {"construct_s": construct_s, "times": times, "levels": levels}

def step_rate(steps):
    env = gem.make("game:Sokoban-v0-easy", max_turns=10**9)
    env.reset(seed=1)
    r, c = (int(x) for x in env.player_position)
    for name, (dr, dc) in zip(env.action_space, [(-1, 0), (1, 0), (0, -1), (0, 1)]):
        if env.room_state[r + dr, c + dc] in (1, 2):
            break
    back = {"up": "down", "down": "up", "left": "right", "right": "left"}[name]
    actions = ["\\boxed{%s}" % name, "\\boxed{%s}" % back]
    rates = []
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(steps):
            env.step(actions[i & 1])
        rates.append(steps / (time.perf_counter() - t0))
    return {"rates": rates, "last_obs": env.step(actions[0])[0]}

seeds = list(range(args["seeds"]))
out = {
    "easy": resets("game:Sokoban-v0-easy", seeds, float("inf")),
    "hard": resets("game:Sokoban-v0-hard", seeds, args["hard_budget_s"]),
    "step": step_rate(args["steps"]),
}
print(json.dumps(out))
"""


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latency(times_s: list[float]) -> dict[str, float]:
    ms = [t * 1e3 for t in times_s]
    return {
        "seeds": len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "mean_ms": statistics.fmean(ms),
        "max_ms": max(ms),
    }


def level_stats(levels: list[tuple[Level, int]]) -> dict[str, float]:
    """Share of levels solvable within their limit and the mean optimal length of those (exact solver)."""
    lengths = []
    for level, limit in levels:
        moves = solve(level, max_moves=limit)
        if moves is not None:
            lengths.append(len(moves))
    return {
        "levels": len(levels),
        "solvable_within_limit": len(lengths) / len(levels),
        "mean_optimal_moves": statistics.fmean(lengths) if lengths else float("nan"),
        "max_optimal_moves": max(lengths, default=0),
        "boxes_on_target_at_start": sum(bool(set(lv.boxes) & set(lv.targets)) for lv, _ in levels),
    }


def measure_ours(seeds: int, steps: int) -> dict:
    result: dict = {"reset": {}, "levels": {}}
    for env_id in OUR_PRESETS:
        env = gem_envs.make(env_id)
        times, levels = [], []
        for seed in range(seeds):
            t0 = time.perf_counter()
            env.reset(seed=seed)
            times.append(time.perf_counter() - t0)
            limit = env.max_turns if hasattr(env, "max_turns") else env.max_steps
            levels.append((env.level, limit))
        result["reset"][env_id] = latency(times)
        result["levels"][env_id] = level_stats(levels)
    result["step"] = {"rates": our_step_rates(steps)}
    return result


def our_step_rates(steps: int) -> list[float]:
    """Steps/s on GEM-style easy, alternating a valid move and its reverse (every step moves and re-renders)."""
    env = gem_envs.make("game:Sokoban-v0-easy", max_turns=10**9)
    env.reset(seed=1)
    level = env.level
    nbr = neighbours(level.rows, level.cols)
    d = next(
        d
        for d in range(4)
        if nbr[d][level.player] not in level.walls and nbr[d][level.player] not in level.boxes
    )
    actions = [f"\\boxed{{{DIRECTIONS[d]}}}", f"\\boxed{{{DIRECTIONS[OPPOSITE[d]]}}}"]
    rates = []
    step = env.step
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(steps):
            step(actions[i & 1])
        rates.append(steps / (time.perf_counter() - t0))
    assert step(actions[0])[0].endswith(f"you moved {DIRECTIONS[d]}."), "benchmark moves must be valid"
    return rates


def peer_python(peer_dir: Path) -> Path:
    """GEM's interpreter, creating its venv and installing gem-llm on first use."""
    python = peer_dir / "bin" / "python"
    check = [str(python), "-c", "import gem"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"creating {peer_dir} with {GEM_REQUIREMENT} (first run only) ...", file=sys.stderr)
    venv.create(peer_dir, with_pip=True, clear=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", GEM_REQUIREMENT], check=True)
    subprocess.run(check, check=True)
    return python


def measure_gem(python: Path, seeds: int, hard_budget_s: float, steps: int) -> dict:
    args = json.dumps({"seeds": seeds, "hard_budget_s": hard_budget_s, "steps": steps})
    proc = subprocess.run([str(python), "-c", PEER_SNIPPET, args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"GEM measurement failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    raw = json.loads(proc.stdout.strip().splitlines()[-1])
    result: dict = {"reset": {}, "levels": {}, "construct_s": {}}
    for preset in ("easy", "hard"):
        env_id = f"game:Sokoban-v0-{preset}"
        data = raw[preset]
        result["construct_s"][env_id] = data["construct_s"]
        result["reset"][env_id] = latency(data["times"])
        levels = [(Level.from_rooms(lv["fixed"], lv["state"]), lv["max_turns"]) for lv in data["levels"]]
        result["levels"][env_id] = level_stats(levels)
    result["reset"]["game:Sokoban-v0-hard"]["seeds_requested"] = seeds
    result["reset"]["game:Sokoban-v0-hard"]["time_budget_s"] = hard_budget_s
    if " you moved " not in raw["step"]["last_obs"]:
        raise RuntimeError(f"GEM's throughput moves were not valid moves: {raw['step']['last_obs']!r}")
    result["step"] = {"rates": raw["step"]["rates"]}
    return result


def report(ours: dict, gem: dict | None) -> tuple[str, dict]:
    """The table, and per timing the speed-up of gem-envs over GEM (>1: gem-envs is faster)."""
    header = f"{'metric':<46} {'gem-envs':>10} {'GEM 0.1.0':>10} {'speed-up':>9}"
    rows, speedups = [header, "-" * len(header)], {}

    def row(
        name: str, key: str, our_value: float, gem_value: float | None, fmt: str, higher_is_better: bool
    ) -> None:
        speedup = None
        if gem_value is not None:
            speedup = our_value / gem_value if higher_is_better else gem_value / our_value
        speedups[key] = speedup
        gem_text = "n/a" if gem_value is None else format(gem_value, fmt)
        ratio_text = "" if speedup is None else f"{speedup:,.1f}x"
        rows.append(f"{name:<46} {format(our_value, fmt):>10} {gem_text:>10} {ratio_text:>9}")

    for env_id in ("game:Sokoban-v0-easy", "game:Sokoban-v0-hard"):
        for stat in ("p50_ms", "p99_ms"):
            gem_value = gem["reset"][env_id][stat] if gem else None
            label = f"{env_id} reset {stat[:3]} (ms)"
            row(label, f"{env_id}/reset_{stat}", ours["reset"][env_id][stat], gem_value, ",.2f", False)
    gem_rate = statistics.median(gem["step"]["rates"]) if gem else None
    our_rate = statistics.median(ours["step"]["rates"])
    row("easy steps/s (valid moves, 1 thread)", "easy_steps_per_s", our_rate, gem_rate, ",.0f", True)
    for env_id in OUR_PRESETS:
        mine, theirs = ours["levels"][env_id], gem["levels"].get(env_id) if gem else None
        for stat, label, fmt in (
            ("solvable_within_limit", "solvable in limit", ".1%"),
            ("mean_optimal_moves", "mean optimal moves", ".1f"),
        ):
            gem_text = "n/a" if theirs is None else format(theirs[stat], fmt)
            rows.append(f"{env_id + ' ' + label:<46} {format(mine[stat], fmt):>10} {gem_text:>10}")
    if gem:
        hard = gem["reset"]["game:Sokoban-v0-hard"]
        rows.append(
            f"(GEM hard: {hard['seeds']} of {hard['seeds_requested']} seeds within its {hard['time_budget_s']:.0f} s budget)"
        )
    return "\n".join(rows), speedups


def targets_met(ours: dict) -> dict[str, dict]:
    measured = {
        "hard_reset_p50_ms": ours["reset"]["game:Sokoban-v0-hard"]["p50_ms"],
        "hard_reset_p99_ms": ours["reset"]["game:Sokoban-v0-hard"]["p99_ms"],
        "easy_reset_p50_ms": ours["reset"]["game:Sokoban-v0-easy"]["p50_ms"],
        "easy_steps_per_s": statistics.median(ours["step"]["rates"]),
    }
    return {
        key: {
            "target": TARGETS[key],
            "measured": value,
            "met": value >= TARGETS[key] if key.endswith("_per_s") else value <= TARGETS[key],
        }
        for key, value in measured.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write every figure to")
    parser.add_argument(
        "--seeds", type=int, default=200, help="seeds per preset for reset latency and levels"
    )
    parser.add_argument(
        "--steps", type=int, default=200_000, help="steps per throughput run (GEM runs a tenth)"
    )
    parser.add_argument(
        "--gem-hard-budget", type=float, default=120.0, help="seconds for GEM's slow hard resets"
    )
    parser.add_argument("--no-gem", action="store_true", help="measure gem-envs only")
    parser.add_argument("--peer-dir", type=Path, default=PEER_DIR, help="GEM's virtual environment")
    args = parser.parse_args(argv)

    print("measuring gem-envs ...", file=sys.stderr)
    ours = measure_ours(args.seeds, args.steps)
    gem = None
    if not args.no_gem:
        print("measuring GEM (hard resets may take the whole budget) ...", file=sys.stderr)
        gem = measure_gem(
            peer_python(args.peer_dir), args.seeds, args.gem_hard_budget, max(1, args.steps // 10)
        )
    table, speedups = report(ours, gem)
    targets = targets_met(ours)
    print(table)
    print(
        "targets: "
        + ", ".join(
            f"{k} {'met' if v['met'] else 'MISSED'} ({v['measured']:,.2f} vs {v['target']:,})"
            for k, v in targets.items()
        )
    )
    result = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "gem_envs": ours,
        "gem": gem,
        "speedup": speedups,
        "targets": targets,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(v["met"] for v in targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
