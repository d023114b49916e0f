"""The process runtime's sandbox file system, attacked from inside (issue 11) and used as upstream's
`python:3.11` container is (issue 17): real sandboxes through a real admin."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rock_admin.testing import Admin, failed, ok, run, running_admin, start_sandbox

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need the admin to run as root")

#: As `nobody`, through a shell: setpriv keeps its capabilities across its own exec, a shell's exec drops them.
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/sh", "-c"]
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def admin() -> Iterator[Admin]:
    # A state dir others may traverse up to (as /var/lib/rock-admin is): pytest's own tmp dirs are 0700,
    # which would hide the admin's files from other users whatever the admin does.
    base = Path(tempfile.mkdtemp(prefix="rock-escape-fs-"))
    base.chmod(0o755)
    try:
        with running_admin(base / "admin") as a:
            yield a
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def http(admin: Admin) -> Iterator[httpx.Client]:
    with admin.client() as c:
        yield c


@pytest.fixture
def sandbox(http: httpx.Client, request: pytest.FixtureRequest) -> Iterator[str]:
    sid = start_sandbox(http, **getattr(request, "param", {}))  # start fields through indirect parametrize
    ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
    yield sid
    http.post("/stop", json={"sandbox_id": sid})
    http.post("/delete", json={"sandbox_id": sid})


def _mounts_inside(http: httpx.Client, sid: str) -> dict[str, set[str]]:
    """Mount point → its per-mount options, as the sandbox sees them."""
    table = run(http, sid, "cat /proc/self/mountinfo")["output"]
    return {line.split()[4]: set(line.split()[5].split(",")) for line in table.splitlines() if line.strip()}


def test_planted_setuid_shell_gives_no_root(http: httpx.Client, sandbox: str, admin: Admin) -> None:
    places = ["/tmp", "/home/user", "/run/rocklet", "/dev/shm", "/root", "/etc"]
    plant = " ; ".join(f"cp /bin/bash {p}/sbash && chmod 4755 {p}/sbash" for p in places)
    run(http, sandbox, plant)
    # Inside: a user that is not root runs the planted shell; it must not come back as euid 0.
    for p in places:
        shell = f"{p}/sbash -p -c 'echo EUID=\\$EUID'"  # expanded by the planted shell, not the outer one
        out = run(http, sandbox, f'{" ".join(NOBODY)} "{shell}" 2>&1')["output"]
        assert "EUID=0" not in out, (p, out)
    # Every writable mount in the sandbox is nosuid and nodev; those upstream's containers run nothing from too.
    mounts = _mounts_inside(http, sandbox)
    for point, options in mounts.items():
        if "rw" in options:
            assert {"nosuid", "nodev"} <= options, (point, options)
    for point in ("/run/rocklet", "/dev/shm"):
        assert "noexec" in mounts[point], (point, mounts[point])
    # On the host: the sandbox's files are the admin's alone (0700 from the sandboxes dir down), and a
    # planted shell reached there gives nobody root either.
    sandboxes = admin.state_dir / "sandboxes"
    assert sandboxes.stat().st_mode & 0o077 == 0, oct(sandboxes.stat().st_mode)
    sdir = sandboxes / sandbox
    assert sdir.stat().st_mode & 0o077 == 0, oct(sdir.stat().st_mode)
    planted = [Path(d) / "sbash" for d, _, files in os.walk(sdir) if "sbash" in files]
    assert planted, "the planted files are somewhere under the sandbox's dir"
    for path in planted:
        result = subprocess.run(
            [*NOBODY, f"{path} -p -c 'echo EUID=$EUID'"], capture_output=True, text=True, timeout=30
        )
        assert "EUID=0" not in result.stdout, (path, result)


def test_host_tree_is_not_visible(http: httpx.Client, sandbox: str) -> None:
    # The host's password hashes: /etc/shadow inside is a sanitized one ("*" for every user), never the host's.
    inside = run(http, sandbox, "cat /etc/shadow")["output"]
    assert inside != Path("/etc/shadow").read_text()
    assert {line.split(":")[1] for line in inside.splitlines() if line} <= {"*"}, inside
    for secret in ("/etc/shadow-", "/etc/gshadow-"):
        if Path(secret).exists():
            assert run(http, sandbox, f"test -e {secret}")["exit_code"] != 0, secret
    # The project's source tree (this very file), the host's /root and what lies outside the allow-list.
    assert run(http, sandbox, f"cat {__file__}")["exit_code"] != 0
    assert run(http, sandbox, f"test -e {REPO}/.git")["exit_code"] != 0
    if Path("/root/.bashrc").exists():
        assert run(http, sandbox, "cat /root/.bashrc")["exit_code"] != 0
    for top in ("/boot", "/opt", "/srv", "/mnt"):
        if Path(top).is_dir() and os.listdir(top):
            assert run(http, sandbox, f"ls -A {top}")["output"].strip() == "", top
    # What a python:3.11 workload needs is there.
    checks = (
        "python3 -c 'import ssl, sqlite3, json, ctypes; print(40 + 2)'",
        "bash -c 'echo $((6 * 7))'",
        "getent passwd root | cut -d: -f1",
        "test -s /etc/ssl/certs/ca-certificates.crt && echo certs",
        "ls /usr/bin/env",
    )
    outputs = [run(http, sandbox, c) for c in checks]
    assert [o["exit_code"] for o in outputs] == [0] * len(checks), outputs
    assert [o["output"].strip() for o in outputs[:3]] == ["42", "42", "root"]


@pytest.mark.parametrize("sandbox", [{"disk": "64m"}], indirect=True)
def test_writable_root_within_the_disk_limit(http: httpx.Client, sandbox: str, admin: Admin) -> None:
    # Upstream's python:3.11 container: / , /etc, /root, /usr are writable (remote_user.create_remote_user).
    steps = (
        "mkdir /root/x && echo hi > /root/x/f && cat /root/x/f",
        "useradd -m -s /bin/bash rockuser && su rockuser -c 'id -un; echo mine > ~/f; cat ~/f'",
        "echo kept > /etc/rock-marker && touch /usr/local/bin/rock-tool && mkdir /data && touch /data/x",
    )
    outputs = [run(http, sandbox, s) for s in steps]
    assert [o["exit_code"] for o in outputs] == [0, 0, 0], outputs
    assert outputs[1]["output"].split() == ["rockuser", "mine"]
    for host_path in ("/root/x", "/etc/rock-marker", "/usr/local/bin/rock-tool", "/data", "/home/rockuser"):
        assert not Path(host_path).exists(), host_path
    assert "rockuser" not in Path("/etc/passwd").read_text()
    # The disk limit: writes anywhere in the sandbox stop at 64 MiB with ENOSPC, none of it on the host's disk.
    full = run(
        http,
        sandbox,
        "dd if=/dev/zero of=/root/big bs=1M count=48 2>&1; dd if=/dev/zero of=/tmp/big bs=1M count=48 2>&1",
    )
    assert "No space left on device" in full["output"], full
    used = run(http, sandbox, "du -smc /root/big /tmp/big | tail -1")["output"].split()[0]
    assert 48 <= int(used) <= 64, used
    host_dev = os.stat(admin.state_dir).st_dev
    on_host_disk = [
        (Path(d) / f, (Path(d) / f).stat().st_size)
        for d, _, files in os.walk(admin.state_dir)
        for f in files
        if os.lstat(Path(d) / f).st_dev == host_dev and (Path(d) / f).is_file()
    ]
    assert not [(p, s) for p, s in on_host_disk if s > 1 << 20], on_host_disk
    # The sandbox still works at its limit once space is freed.
    assert (
        run(http, sandbox, "rm /root/big /tmp/big && echo ok > /tmp/small && cat /tmp/small")[
            "output"
        ].strip()
        == "ok"
    )


def test_delete_discards_the_writable_layer(http: httpx.Client, admin: Admin) -> None:
    sid = start_sandbox(http, disk="32m")
    ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
    run(http, sid, "dd if=/dev/zero of=/root/f bs=1M count=8")
    ok(http.post("/stop", json={"sandbox_id": sid}))
    ok(http.post("/delete", json={"sandbox_id": sid}))
    sdir = admin.state_dir / "sandboxes" / sid
    assert not sdir.exists()
    with open("/proc/self/mountinfo") as table:
        assert not [line for line in table if str(sdir) in line]


def test_bad_disk_is_refused_naming_the_field(http: httpx.Client) -> None:
    for disk in ("lots", "1k", "-5g"):
        assert "disk" in failed(http.post("/start", json={"image": "python:3.11", "disk": disk}))["message"]
