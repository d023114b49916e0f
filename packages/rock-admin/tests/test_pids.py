"""Host pid exhaustion (issue 11 §1): 8 sandboxes of 4096 pids each could fork-bomb a host whose pid_max is
32768. The admin now refuses a start that would take the sandboxes' total past `pids_budget` (here lowered to
two sandboxes' worth), and a fork bomb stops at its own sandbox's limit while another sandbox still works."""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

import pytest

from rock_admin.testing import failed, ok, run, running_admin, start_sandbox

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="cgroup limits need the admin to run as root")
PIDS = 64
BOMB = """
import os, time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.05)
"""


def _pids_current(admin_records: list[dict], sid: str) -> int | None:
    for record in admin_records:
        if record["sandbox_id"] == sid:
            for cgroup in record["handle"].get("cgroups", []):
                current = Path(cgroup) / "pids.current"
                if current.exists():
                    return int(current.read_text())
    return None


@needs_root
def test_budget_refuses_a_start_and_a_fork_bomb_stays_in_its_sandbox(tmp_path: Path) -> None:
    with (
        running_admin(tmp_path / "a", pids_max=str(PIDS), pids_budget=str(2 * PIDS + 10)) as admin,
        admin.client() as http,
    ):
        bomb, other = start_sandbox(http, sandbox_id="bomb"), start_sandbox(http, sandbox_id="other")
        refused = failed(http.post("/start", json={"image": "python:3.11", "memory": "512m", "cpus": 1}))
        assert "pids_budget" in refused["message"] and str(2 * PIDS + 10) in refused["message"], refused
        assert refused["result"]["code"] == 4000

        ok(http.post("/create_session", json={"sandbox_id": other, "session": "s"}))
        # The bomb: every process forks for ever, retrying when the fork is refused.
        ok(http.post("/processes", json={"sandbox_id": bomb, "command": f"python3 -c {shlex.quote(BOMB)}"}))
        deadline = time.monotonic() + 30
        while (_pids_current(admin._records(), bomb) or 0) < PIDS - 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        held = _pids_current(admin._records(), bomb)
        assert held is not None and PIDS - 4 <= held <= PIDS, held  # at its own limit, not past it
        # The other sandbox still forks and runs commands.
        assert run(http, other, "for i in 1 2 3; do (echo $i); done | wc -l")["output"].strip() == "3"

        ok(http.post("/stop", json={"sandbox_id": bomb}))  # its pids go back to the budget
        third = start_sandbox(http)
        assert ok(http.get("/get_status", params={"sandbox_id": third}))["state"] == "running"  # type: ignore[index]


def test_bad_pids_settings_are_named(tmp_path: Path) -> None:
    from rock_admin.config import AdminConfig, AdminConfigError

    with pytest.raises(AdminConfigError, match="pids_max"):
        AdminConfig.load(env={}, state_dir=str(tmp_path), pids_max=2)
    with pytest.raises(AdminConfigError, match="pids_budget"):
        AdminConfig.load(env={}, state_dir=str(tmp_path), pids_budget=-5)
