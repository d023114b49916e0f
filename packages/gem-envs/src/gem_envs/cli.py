"""`gem-envs` / `python -m gem_envs`: list the registered ids, or run the demo table."""

from __future__ import annotations

import argparse
import sys

from gem_envs.agents import AGENTS
from gem_envs.episodes import Summary, run_episodes
from gem_envs.registry import list_envs, make, spec

DEMO_ENVS = ("game:Sokoban-v0-easy", "game:Sokoban-v0-hard", "SimpleSokoban")


def format_table(rows: list[Summary]) -> str:
    header = f"{'env':<24} {'agent':<7} {'episodes':>8} {'success':>8} {'steps/ep':>8} {'return':>8} {'steps/s':>10}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.env_id:<24} {r.agent:<7} {r.episodes:>8} {r.success_rate:>8.1%} {r.mean_steps:>8.1f} "
            f"{r.mean_return:>8.2f} {r.steps_per_second:>10,.0f}"
        )
    return "\n".join(lines)


def cmd_demo(args: argparse.Namespace) -> int:
    rows = []
    for env_id in args.env or DEMO_ENVS:
        env = make(env_id)
        for agent_name in args.agents:
            rows.append(run_episodes(env, AGENTS[agent_name](), range(args.seed, args.seed + args.episodes)))
        env.close()
    print(format_table(rows))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for env_id in list_envs(args.prefix):
        preset = spec(env_id).kwargs
        print(env_id if not preset else f"{env_id}  {preset}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gem-envs", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="play episodes with a solver and a random agent and print a table")
    demo.add_argument("--env", action="append", help=f"env id (repeatable; default: {', '.join(DEMO_ENVS)})")
    demo.add_argument("--episodes", type=int, default=200, help="episodes per env and agent (default 200)")
    demo.add_argument("--seed", type=int, default=0, help="first episode seed (default 0)")
    demo.add_argument("--agents", nargs="+", choices=sorted(AGENTS), default=["solver", "random"])
    demo.set_defaults(func=cmd_demo)
    listing = sub.add_parser("list", help="list registered env ids and their presets")
    listing.add_argument("prefix", nargs="?", default="", help="only ids starting with this (e.g. game:)")
    listing.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "episodes", 1) < 1:
        print("gem-envs: --episodes must be at least 1", file=sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
