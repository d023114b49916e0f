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

from rock_admin.testing import Admin, ok, run, running_admin, start_sandbox

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
    marker = request.node.get_closest_marker("start")
    sid = start_sandbox(http, **(marker.kwargs if marker else {}))
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
    # Every writable mount in the sandbox is nosuid and nodev.
    for point, options in _mounts_inside(http, sandbox).items():
        if "rw" in options:
            assert {"nosuid", "nodev"} <= options, (point, options)
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
