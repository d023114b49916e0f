"""Runs stand_in/ in a child pytest. Its fake Ascend device layer renames torch's PrivateUse1 backend to
`npu`, which torch cannot undo: torch.distributed in any later test of the same process would then ask for
NPU hooks that do not exist (barrier: "Please register PrivateUse1HooksInterface")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
REPO = HERE.parents[2]


def test_stand_in_suite_in_its_own_process(tmp_path):
    cmd = [sys.executable, "-m", "pytest", str(HERE / "stand_in"), "-q", "-rA", "-p", "no:cacheprovider"]
    out = subprocess.run(
        [*cmd, f"--basetemp={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "ROLL_ASCEND_STAND_IN": "1"},
        timeout=540,
    )
    print(out.stdout)  # the child's per-test results, for -rA or a failure report
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    summary = out.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
