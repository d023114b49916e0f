"""On a real Ascend NPU (skipped elsewhere): one tiny agentic GRPO step of ROLL's pipeline on device 0."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from roll.cli import main

# The tiny-cpu Sokoban job moved onto NPU 0, one RL step (its dry run is checked on the stand-in below).
STEP_ARGS = [
    "--config_path",
    "tiny-cpu",
    "--config_name",
    "agentic_sokoban",
    "max_steps=1",
    "eval_steps=1000",
    "actor_train.device_mapping=[0]",
    "actor_train.world_size=null",
    "actor_infer.device_mapping=[0]",
    "actor_infer.world_size=null",
]


def _real_npus() -> int:
    """Asked in a child: the stand-in of conftest.py owns torch's PrivateUse1 name once a test used it."""
    code = "from roll_ascend import NpuPlatform; print(NpuPlatform.device_count())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return int(out.stdout.split()[-1]) if out.returncode == 0 and out.stdout.split() else 0


def test_step_args_validate_on_the_stand_in(fake_npu, capsys):
    assert main([*STEP_ARGS, "--dry-run"]) == 0, capsys.readouterr().err
    assert "[0]" in capsys.readouterr().out.split("placement plan")[-1]


@pytest.mark.npu
def test_tiny_agentic_grpo_step_on_npu(tmp_path):
    if _real_npus() < 1:
        pytest.skip("no Ascend NPU here (torch_npu with CANN and a visible device)")
    cmd = [sys.executable, "-m", "roll", *STEP_ARGS, f"output_dir={tmp_path}"]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=1800, cwd=tmp_path, env=dict(os.environ)
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert list(tmp_path.rglob("events.out.tfevents*")), "no training metrics were written"
