"""The main job on a slow machine, and sandbox churn (issue: 26 minutes in the first validation, 384 sandboxes).

- The demo's first validation (32 sandbox envs) while CPU burners keep every core busy: it completes, or
  fails fast with the error that names the cause; its log (not a terminal) shows progress lines.
- Sandbox starts per completed episode, read from the admin's `/metrics`: one start per env slot, however
  many episodes the slots play, when nothing failed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from integration_helpers import SANDBOX_CONFIG, TAG, config
from prometheus_client.parser import text_string_to_metric_families

BURN_SECONDS = 900  # each burner also stops itself, should the test process die before it kills them
BURNER = f"import time\nend = time.monotonic() + {BURN_SECONDS}\nwhile time.monotonic() < end: pass\n"


def _start_burners() -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", BURNER]) for _ in range(os.cpu_count() or 2)]


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.kill()
    for proc in procs:
        proc.wait(timeout=30)


def test_first_validation_under_cpu_load_completes_or_fails_fast(tmp_path: Path) -> None:
    burners = _start_burners()
    try:
        assert all(p.poll() is None for p in burners)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "rock_roll_integration.demo",
                "--validate-only",
                "--progress-every",
                "5",
                "--out",
                str(tmp_path / "demo"),
            ],
            capture_output=True,
            text=True,
            timeout=600,  # "fails fast": minutes, never the 26 of the issue
            env={
                **os.environ,
                "ROLL_CACHE_DIR": os.environ.get("ROLL_CACHE_DIR", str(tmp_path / "roll-cache")),
            },
        )
        loaded = all(p.poll() is None for p in burners)  # the load lasted the whole run
    finally:
        _stop(burners)
    assert loaded
    if proc.returncode == 0:
        assert re.search(r"validation: success \d+\.\d%, score -?\d+\.\d\d, .* over 32 episodes", proc.stdout)
    else:  # too slow even for adaptive deadlines: the error says how slow, and what to change
        assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-5000:]
        assert "demo: val rollout:" in proc.stderr and "on this machine" in proc.stderr
        assert "val_env_manager.env_timeout_s" in proc.stderr
    # not a terminal: plain progress lines counting the validation's episodes and naming the waits
    lines = [line for line in proc.stderr.splitlines() if "] validate (before)" in line]
    assert lines, proc.stderr[-3000:]
    assert any(re.search(r"validate \(before\) \d+/32 episodes", line) for line in lines)
    assert any("waiting for" in line for line in lines), lines


def _starts(admin) -> int:
    """Sandbox starts the admin has served so far (its Prometheus counter)."""
    text = admin.raw().get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "rock_admin_sandbox_starts_total":
                return int(sample.value)
    raise AssertionError(f"no rock_admin_sandbox_starts_total in /metrics:\n{text[:2000]}")


def test_one_sandbox_start_per_env_slot_however_many_episodes(admin, tmp_path: Path) -> None:
    from roll.agentic.pipeline import AgenticPipeline

    cfg = config(SANDBOX_CONFIG, admin.url, tmp_path, "max_steps=2")
    before = _starts(admin)
    pipe = AgenticPipeline(cfg, stdout=False)
    try:
        episodes = 0
        for _ in range(2):
            trajs, metrics = pipe.schedulers["train"].get_batch(cfg.rollout_batch_size)
            assert metrics["scheduler/env_failures"] == 0 and metrics["scheduler/env_replaced"] == 0
            episodes += len(trajs)
            val, val_metrics = pipe.schedulers["val"].get_batch(cfg.val_batch_size, fresh=True)
            assert val_metrics["scheduler/env_replaced"] == 0
            episodes += len(val)
        slots = len(pipe.schedulers["train"].slots) + len(pipe.schedulers["val"].slots)
        starts = _starts(admin) - before
    finally:
        pipe.close()
    assert episodes == 2 * (cfg.rollout_batch_size + cfg.val_batch_size)
    assert starts == slots  # no churn: each env slot started its sandbox once and kept it
    print(f"{TAG}: {starts} sandbox starts for {episodes} episodes ({starts / episodes:.3f} per episode)")
