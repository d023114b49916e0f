"""Isolation and limits of the process runtime, checked from inside real sandboxes."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from rock_admin.testing import ok, run, start_sandbox

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need the admin to run as root")


@needs_root
def test_sandboxes_do_not_see_each_other_or_the_host(http: httpx.Client, two, admin, tmp_path: Path) -> None:
    a, b = two
    assert run(http, a, "echo secret > /tmp/mine && cat /tmp/mine")["output"].strip() == "secret"
    assert run(http, b, "cat /tmp/mine")["exit_code"] != 0
    # Processes: each sandbox sees only its own (its init is pid 1).
    ps_a = run(http, a, "sleep 300 & ls /proc | grep -E '^[0-9]+$' | wc -l")["output"]
    assert int(ps_a.split()[-1]) < 10
    assert run(http, b, "pgrep -f 'sleep 300'")["exit_code"] == 1
    assert run(http, a, "echo $$ > /dev/null; cat /proc/1/status | head -1")["exit_code"] == 0
    # The host's writable places are hidden: its /tmp (where this test's files are), the admin's state dir.
    host_file = tmp_path / "host-secret.txt"
    host_file.write_text("host")
    assert run(http, a, f"cat {host_file}")["exit_code"] != 0
    assert run(http, a, f"ls {admin.state_dir}/sandboxes 2>/dev/null")["output"].strip() == ""
    # The host's /root (credentials, caches) is hidden too; only the interpreter the rocklet runs on is
    # brought back, read-only, when it lives there.
    if Path("/root/.bashrc").exists():
        assert run(http, a, "cat /root/.bashrc")["exit_code"] != 0
    # Another sandbox's socket is not reachable: only its own is in /run/rocklet.
    sockets = run(http, a, "ls /run/rocklet")["output"].split()
    assert "rocklet.sock" in sockets
    assert run(http, a, f"ls {admin.state_dir}/sandboxes/{b}/run")["exit_code"] != 0
    # The root is writable (upstream's containers are) in the sandbox's own layer: not the host's, not B's;
    # root inside cannot remount anything or mount.
    assert run(http, a, "touch /etc/evil /usr/evil")["exit_code"] == 0
    assert run(http, b, "ls /etc/evil /usr/evil")["exit_code"] != 0
    assert not Path("/usr/evil").exists()
    assert run(http, a, "mount -o remount,rw / 2>&1")["exit_code"] != 0
    assert run(http, a, "mount -t tmpfs x /mnt 2>&1")["exit_code"] != 0
    assert not Path("/etc/evil").exists()
    # Private writable dirs work.
    assert (
        run(http, a, "echo ok > $HOME/f && cat $HOME/f && echo ok2 > /tmp/g && cat /tmp/g")["exit_code"] == 0
    )
    # Network: only loopback; its own hostname.
    assert run(http, a, "cat /proc/net/dev | grep -c ':'")["output"].strip() == "1"
    assert run(http, a, "hostname")["output"].strip() == a[:63]


@needs_root
def test_limits_applied_and_reported(http: httpx.Client) -> None:
    sid = start_sandbox(http, memory="64m", cpus=0.5)
    try:
        status = ok(http.get("/get_status", params={"sandbox_id": sid}))
        assert status["isolation"].startswith("namespaces")  # type: ignore[index]
        if not status["limits_enforced"]:  # type: ignore[index]
            pytest.skip(f"cgroups not writable here: {status['limits_message']}")  # type: ignore[index]
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        # The limits are in the sandbox's cgroup (v1: one dir per controller; v2: one dir).
        # Inside, a private cgroup namespace: the sandbox's own group is its root (no host path, no id).
        cgroup = run(http, sid, "cat /proc/self/cgroup")["output"]
        assert sid not in cgroup and ("memory:/\n" in cgroup or "0::/\n" in cgroup), cgroup
        hog = run(http, sid, "python3 -c 'x = bytearray(256 * 1024 * 1024); print(len(x))'")
        assert hog["exit_code"] != 0  # killed (137) or MemoryError
        mem_limit = next(
            (
                Path(p)
                for p in (
                    f"/sys/fs/cgroup/memory/rock-admin/{sid}/memory.limit_in_bytes",
                    f"/sys/fs/cgroup/rock-admin/{sid}/memory.max",
                )
                if Path(p).exists()
            ),
            None,
        )
        assert mem_limit is not None and int(mem_limit.read_text()) == 64 * 1024 * 1024
        pids = next(
            Path(p)
            for p in (
                f"/sys/fs/cgroup/pids/rock-admin/{sid}/pids.max",
                f"/sys/fs/cgroup/rock-admin/{sid}/pids.max",
            )
            if Path(p).exists()
        )
        assert int(pids.read_text()) > 0
        quota = Path(f"/sys/fs/cgroup/cpu/rock-admin/{sid}/cpu.cfs_quota_us")
        if quota.exists():
            assert int(quota.read_text()) == 50000
        # The sandbox survives its hog: the next command runs.
        assert run(http, sid, "echo alive")["output"].strip() == "alive"
    finally:
        http.post("/stop", json={"sandbox_id": sid})
        http.post("/delete", json={"sandbox_id": sid})


@needs_root
def test_fork_bomb_is_contained(tmp_path: Path) -> None:
    from rock_admin.testing import running_admin

    with running_admin(tmp_path / "admin", pids_max="64") as admin, admin.client() as http:
        sid = start_sandbox(http)
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        status = ok(http.get("/get_status", params={"sandbox_id": sid}))
        if not status["limits_enforced"]:  # type: ignore[index]
            pytest.skip(f"cgroups not writable here: {status['limits_message']}")  # type: ignore[index]
        bomb = (
            "import os, time\n"
            "n = 0\n"
            "try:\n"
            "    while n < 1000:\n"
            "        if os.fork() == 0:\n"
            "            time.sleep(3)\n"
            "            os._exit(0)\n"
            "        n += 1\n"
            "except OSError as exc:\n"
            "    print('blocked after', n, exc.errno)\n"
        )
        ok(http.post("/write_file", json={"sandbox_id": sid, "path": "/tmp/bomb.py", "content": bomb}))
        out = run(http, sid, "python3 /tmp/bomb.py", timeout=60)["output"]
        assert "blocked after" in out, out
        assert int(out.split()[2]) < 64
        # The host is fine and so is the admin.
        assert ok(http.get("/is_alive", params={"sandbox_id": sid}))["is_alive"] is True  # type: ignore[index]
