"""An idle sandbox on the process runtime costs no CPU: its rocklet (forked by the zygote) has no periodic
wake-up, so 1,000 idle sandboxes cost the host nothing between requests."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from rock_admin.testing import ok, run, start_sandbox


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").iterdir():
            todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def _wakeups(pids: list[int]) -> int:
    """Voluntary context switches (sleeps ended by a wake-up) over every thread of `pids`."""
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    total += int(line.split()[1])
    return total


def test_idle_sandbox_processes_do_not_wake_up(http: httpx.Client) -> None:
    sid = start_sandbox(http)
    try:
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        assert run(http, sid, "echo hi")["output"].strip() == "hi"
        assert ok(http.post("/execute", json={"sandbox_id": sid, "command": ["true"]}))["exit_code"] == 0  # type: ignore[index]
        status = ok(http.get("/get_status", params={"sandbox_id": sid}))
        pids = _descendants(status["metadata"]["pid"])  # type: ignore[index]
        assert len(pids) >= 3  # init, rocklet, the session's bash
        time.sleep(0.5)
        before = _wakeups(pids)
        time.sleep(3.0)
        woke = _wakeups(pids) - before
        # uvicorn's stock server alone woke ~30 times in 3 s; the admin's health scan may probe it once meanwhile.
        assert woke <= 10, f"{woke} wake-ups in 3 s of an idle sandbox"
    finally:
        http.post("/stop", json={"sandbox_id": sid})
