"""Run the published upstream clients (rl-rock 1.11.0, swe-rex 1.4.0) against our servers, for compatibility
tests: `run_upstream(script, base_url=...)` runs `script` in `.venv-peers/upstream` (scripts/peers-venv.sh makes
it; upstream's SDK is also imported as `rock`, so it never shares a venv with ours) and returns the JSON the
script printed last. `ROCK_UPSTREAM_PYTHON` names another interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[4]
PEER_PYTHON = Path(
    os.environ.get("ROCK_UPSTREAM_PYTHON") or ROOT / ".venv-peers" / "upstream" / "bin" / "python"
)

#: Skips a module when the upstream venv is missing (`make setup` creates it; CI always has it).
PEER_SKIP = pytest.mark.skipif(
    not PEER_PYTHON.exists(), reason=f"{PEER_PYTHON} missing: run scripts/peers-venv.sh"
)


def run_upstream(script: str, timeout: float = 120, **env: str) -> Any:
    """Run `script` with upstream's packages; `env` is its environment (plus PATH/HOME). Fails on a non-zero exit
    with the script's stderr, so an upstream exception shows its own traceback."""
    proc = subprocess.run(
        [str(PEER_PYTHON), "-c", textwrap.dedent(script)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"upstream client failed (rc {proc.returncode}):\n{proc.stderr[-6000:]}"
    lines = proc.stdout.strip().splitlines()
    assert lines, f"upstream script printed nothing; stderr:\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1])
