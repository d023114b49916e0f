"""Smoke test of the main job: `python -m rock_roll_integration.demo` with tiny sizes, end to end (a real
rock-admin, sandbox-served Sokoban envs, warm-up, GRPO steps), then the outputs and the admin's shutdown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TINY = [
    "--steps",
    "1",
    "--warmup",
    "1",
    "--set",
    "val_batch_size=4",
    "--set",
    "val_env_manager.num_env_groups=4",
    "--set",
    "val_env_manager.num_groups_partition=[4]",
    "--set",
    "rollout_batch_size=4",
    "--set",
    "train_env_manager.num_env_groups=1",
    "--set",
    "train_env_manager.num_groups_partition=[1]",
]


def test_expert_solves_every_level_from_its_text() -> None:
    """The warm-up's teacher: reading only the rendered board, it solves each level within the step limit."""
    from rock_roll_integration.expert import expert_action, last_board

    import gem_envs

    assert last_board("no board here") is None
    env = gem_envs.make("sokoban", dim_room=(6, 6), num_boxes=1, max_steps=5)
    for seed in range(30):
        observation, info = env.reset(seed=seed)
        prompt = info["env_instruction"] + "\nTurn 1:\n" + observation
        for turn in range(2, 7):
            observation, _, terminated, _, info = env.step(expert_action(prompt))
            prompt += f"\nTurn {turn}:\n{observation}"
            if terminated:
                break
        assert info["metrics"]["success"], f"seed {seed}"


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_demo_writes_summary_and_stops_admin(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "rock_roll_integration.demo", "--out", str(out), *TINY],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ROLL_CACHE_DIR": os.environ.get("ROLL_CACHE_DIR", str(tmp_path / "roll-cache"))},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "after RL" in proc.stdout and "env steps/s" in proc.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert [r["stage"] for r in summary["evals"]] == ["before training", "after warm-up", "after RL"]
    for row in summary["evals"]:
        assert 0.0 <= row["success_rate"] <= 1.0 and 0.0 <= row["valid_action_rate"] <= 1.0
        assert row["episodes"] == 4 and row["meaning"]
    # a random-init byte-level model never writes a valid <answer>: the "before" row is 0 by construction
    assert summary["evals"][0]["valid_action_rate"] == 0.0
    assert summary["rl_steps"] == 1 and summary["warmup_iterations"] == 1
    assert summary["envs"] == "sandbox: sokoban_sandbox"
    assert summary["env_steps"] >= 4  # at least one step per training episode
    assert summary["env_steps_per_s"] > 0 and summary["tokens_per_s"] > 0
    assert 0.0 < summary["env_wait_share"] < 1.0
    assert summary["wall_seconds"] >= summary["rl_seconds"] > 0

    png = Path(summary["curves_png"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(Path(summary["tensorboard_dir"]).glob("**/events.out.tfevents.*"))
    metrics = [json.loads(line) for line in Path(summary["metrics_jsonl"]).read_text().splitlines()]
    assert any("val/score/mean" in m for m in metrics) and any("rollout/score/mean" in m for m in metrics)

    # the admin, its zygote and its sandboxes are gone (everything it started mentions its state dir)
    assert (out / "admin" / "admin.log").exists()
    assert _processes_mentioning(str(out / "admin")) == []
