"""A stop (or delete) that races a start ends the sandbox whatever state it is in (issue 17's process leak):
real process runtime, processes and cgroups counted on the host afterwards."""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rock_admin.runtimes.cgroups import ROOT as CGROUP_ROOT
from rock_admin.testing import Admin, ok, running_admin

RACES = 24


def _ppids() -> dict[int, int]:
    result = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    result[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return result


def _zygote_pid(admin: Admin) -> int:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"rock_admin.runtimes.zygote" in cmdline and any(
                str(admin.state_dir).encode() in part for part in cmdline
            ):
                return int(entry)
    raise AssertionError("the admin's zygote is not running")


def sandbox_processes(zygote: int) -> list[int]:
    """Every process below the admin's zygote (the sandboxes it forked and what runs in them)."""
    ppids = _ppids()
    found, frontier = [], {zygote}
    while frontier:
        children = {pid for pid, ppid in ppids.items() if ppid in frontier}
        found += children
        frontier = children
    return found


def sandbox_cgroups(prefix: str) -> list[Path]:
    """The cgroups of sandboxes whose id starts with `prefix` (v1: one per controller; v2: one)."""
    parents = [CGROUP_ROOT / "rock-admin", *(CGROUP_ROOT.glob("*/rock-admin"))]
    return [d for p in parents if p.is_dir() for d in p.iterdir() if d.name.startswith(prefix)]


def _settle(check: Callable[[], list], timeout: float = 10.0) -> list:
    """Poll until `check()` returns an empty list (the kernel reaps asynchronously); what is left otherwise."""
    deadline = time.monotonic() + timeout
    while (left := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_stop_racing_start_leaves_no_process_or_cgroup(tmp_path: Path) -> None:
    prefix = f"race{uuid.uuid4().hex[:6]}-"
    rng = random.Random(11)
    with running_admin(tmp_path / "admin") as admin:

        def race(i: int) -> str:
            sid = f"{prefix}{i}"
            with admin.client() as http:
                ok(
                    http.post(
                        "/start_async", json={"image": "python:3.11", "memory": "256m", "sandbox_id": sid}
                    )
                )
                time.sleep(rng.choice([0, 0, 0.001, 0.005, 0.02, 0.05]))
                ok(http.post("/stop", json={"sandbox_id": sid}))
                # Right after stop answers, nothing of the sandbox is left (not even while it was starting).
                assert _settle(lambda: [d for d in sandbox_cgroups(prefix) if d.name == sid]) == []
            return sid

        with ThreadPoolExecutor(6) as pool:
            sids = list(pool.map(race, range(RACES)))
        zygote = _zygote_pid(admin)
        assert _settle(lambda: sandbox_processes(zygote)) == []
        assert sandbox_cgroups(prefix) == []
        with admin.client() as http:
            for sid in sids:
                status = ok(http.get("/get_status", params={"sandbox_id": sid, "include_all_states": "true"}))
                assert status["state"] == "stopped", status  # type: ignore[index]
                ok(http.post("/delete", json={"sandbox_id": sid}))


def test_delete_racing_start_leaves_no_process_or_cgroup(tmp_path: Path) -> None:
    """`delete` sent while the sandbox is still pending (no stop first) ends it too."""
    prefix = f"del{uuid.uuid4().hex[:6]}-"
    with running_admin(tmp_path / "admin") as admin:

        def race(i: int) -> None:
            sid = f"{prefix}{i}"
            with admin.client() as http:
                ok(
                    http.post(
                        "/start_async", json={"image": "python:3.11", "memory": "256m", "sandbox_id": sid}
                    )
                )
                time.sleep(0.002 * (i % 5))
                ok(http.post("/delete", json={"sandbox_id": sid}))
                gone = http.get("/get_status", params={"sandbox_id": sid, "include_all_states": "true"})
                assert gone.json()["result"]["state"] == "deleted", gone.text

        with ThreadPoolExecutor(6) as pool:
            list(pool.map(race, range(RACES // 2)))
        zygote = _zygote_pid(admin)
        assert _settle(lambda: sandbox_processes(zygote)) == []
        assert sandbox_cgroups(prefix) == []
        assert not [p for p in (admin.state_dir / "sandboxes").glob(f"{prefix}*")]


def test_sdk_start_that_fails_then_stops_leaves_nothing(tmp_path: Path) -> None:
    """A start that times out before the rocklet answers (the SDK then calls stop): nothing is left."""
    prefix = f"slow{uuid.uuid4().hex[:6]}-"
    with running_admin(tmp_path / "admin") as admin, admin.client() as http:
        sids = []
        for i in range(4):
            sid = f"{prefix}{i}"
            reply = http.post(
                "/start",
                json={"image": "python:3.11", "memory": "256m", "sandbox_id": sid, "startup_timeout": 1e-3},
            ).json()
            assert reply["status"] == "Failed" or reply["result"]["sandbox_id"] == sid
            ok(http.post("/stop", json={"sandbox_id": sid}))
            sids.append(sid)
        zygote = _zygote_pid(admin)
        assert _settle(lambda: sandbox_processes(zygote)) == []
        assert sandbox_cgroups(prefix) == []
        for sid in sids:
            ok(http.post("/delete", json={"sandbox_id": sid}))
        assert not [p for p in (admin.state_dir / "sandboxes").glob(f"{prefix}*")]
