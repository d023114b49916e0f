"""Helpers of the end-to-end suite (imported by its tests; conftest puts this folder on sys.path)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY_CPU = REPO / "packages" / "roll-core" / "examples" / "tiny-cpu"
SANDBOX_CONFIG = "agentic_sokoban_sandbox"
GEM_API_CONFIG = "agentic_sokoban_gem_api"
TAG = "Sokoban"


def config(name: str, url: str, tmp_path: Path, *overrides: str):
    """A validated tiny-cpu config with every ROCK URL pointed at `url` and outputs under `tmp_path`."""
    from roll.config import load_and_validate

    cfg, _, _ = load_and_validate(
        TINY_CPU,
        name,
        [
            f"custom_env.SokobanSandbox.env_config.base_url={url}",
            f"custom_env.SokobanGemApi.rock.base_url={url}",
            f"output_dir={tmp_path / 'out'}",
            *overrides,
        ],
    )
    return cfg


class Recorder:
    """Keeps every batch the train scheduler hands to the trainer (the trajectories behind each step)."""

    def __init__(self, pipe) -> None:
        scheduler = pipe.schedulers["train"]
        self.batches: list[list] = []
        get_batch = scheduler.get_batch

        def recording(*args, **kwargs):
            trajs, metrics = get_batch(*args, **kwargs)
            self.batches.append(list(trajs))
            return trajs, metrics

        scheduler.get_batch = recording


def on_generate(pipe, hook: Callable[[int], None]) -> None:
    """Call `hook(n)` before the n-th generation call of the train rollout (n from 1): faults land
    mid-rollout, between env steps, at a point the test chooses."""
    manager = pipe.schedulers["train"].manager
    generate = manager.generate
    calls = [0]

    def hooked(prompts, budgets):
        calls[0] += 1
        hook(calls[0])
        return generate(prompts, budgets)

    manager.generate = hooked


def read_metrics(cfg) -> list[dict]:
    path = Path(cfg.logging_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
