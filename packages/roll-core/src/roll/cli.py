"""`roll-agentic` / `python -m roll`: load, validate, then train (or `--dry-run`: print and exit).

roll-agentic --config_path examples/tiny-cpu --config_name agentic_sokoban max_steps=5
roll-agentic --config_path examples/qwen2.5-0.5B-agentic --config_name agentic_val_sokoban --dry-run
roll-agentic tiny-model DIR        # write the random-init tiny Qwen2 + byte tokenizer to DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"  # wheel: force-included
if not EXAMPLES_DIR.is_dir():  # editable checkout: packages/roll-core/examples
    EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"


def _find_config_dir(config_path: str) -> Path:
    path = Path(config_path)
    if path.is_dir():
        return path
    shipped = EXAMPLES_DIR / config_path
    if shipped.is_dir():
        return shipped
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roll-agentic",
        description="Train an LLM agent with ROLL's agentic pipeline (ROLL-style YAML config).",
        epilog="Overrides: key=value (dotted paths), +new_key=value, ~key. Example: max_steps=5 actor_train.training_args.learning_rate=1e-4",
    )
    parser.add_argument(
        "--config_path",
        "--config-path",
        required=True,
        help="config folder (a path, or a folder under the shipped examples/)",
    )
    parser.add_argument(
        "--config_name", "--config-name", required=True, help="config file name without .yaml"
    )
    parser.add_argument(
        "--dry-run",
        "--dry_run",
        action="store_true",
        help="resolve + validate, print the YAML and placement plan, exit",
    )
    parser.add_argument("overrides", nargs="*", help="key=value overrides")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "tiny-model":
        from roll.models.tiny import build_tiny_model

        if len(argv) != 2:
            print("usage: roll-agentic tiny-model DIR", file=sys.stderr)
            return 2
        print(build_tiny_model(argv[1]))
        return 0
    args = build_parser().parse_args(argv)
    from roll.config import ConfigError, load_and_validate, placement_plan_text

    config_dir = _find_config_dir(args.config_path)
    try:
        config, _resolved, plan = load_and_validate(config_dir, args.config_name, args.overrides)
    except ConfigError as exc:
        print(f"roll-agentic: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        import dataclasses

        import yaml

        print(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False, allow_unicode=True, width=120))
        print(placement_plan_text(plan))
        return 0
    from roll.agentic.pipeline import AgenticPipeline

    pipeline = AgenticPipeline(config)
    try:
        pipeline.run()
    finally:
        pipeline.close()
    return 0
