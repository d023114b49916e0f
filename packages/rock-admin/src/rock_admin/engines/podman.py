"""Podman's Docker-compatible API service and a base image built without a registry.

`podman_service(dir)` starts `podman system service` on a Unix socket (Docker Engine API) and stops it by PID;
`ensure_base_image(dir)` builds a Debian bookworm root with python3 (debootstrap) and imports it once per
machine, tagged `python:3.11` too, so upstream's default image name resolves with no registry. Everything
(storage, run state, the socket) lives under one folder: `$ROCK_PODMAN_DIR`, else `<repo>/.cache/podman`.

Here cgroups are hybrid v1, where crun refuses every container, and podman's default ulimits are over what
the machine allows: `--runtime runc` and lower default ulimits, passed on the command line, where conmon's
exit command sees them too (env-only settings make every container exit hang for 20 s).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from rock_admin.errors import PodmanError

#: The image `ensure_base_image` builds, and the names it is tagged with as well.
BASE_IMAGE = "localhost/rock-base:bookworm"
BASE_TAGS = ("docker.io/library/python:3.11",)
DEBIAN_MIRROR = os.environ.get("ROCK_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CONTAINERS_CONF = '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'


def podman_dir() -> Path:
    """`$ROCK_PODMAN_DIR`, else `.cache/podman` in the git work tree around the working directory."""
    if os.environ.get("ROCK_PODMAN_DIR"):
        return Path(os.environ["ROCK_PODMAN_DIR"])
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / ".git").exists():
            return d / ".cache" / "podman"
    return Path.home() / ".cache" / "rock-admin" / "podman"


def available() -> str:
    """Empty when podman, runc and debootstrap are installed, else what is missing (a skip reason)."""
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    return f"not installed: {', '.join(missing)}" if missing else ""


def _base_args(root: Path) -> list[str]:
    return [
        "podman",
        "--root",
        str(root / "storage"),
        "--runroot",
        str(root / "runroot"),
        "--tmpdir",
        str(root / "tmp"),
        "--runtime",
        "runc",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
    ]


def _env(root: Path) -> dict[str, str]:
    conf = root / "containers.conf"
    if not conf.exists() or conf.read_text() != CONTAINERS_CONF:
        conf.write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(root: Path, *args: str, input_file: Path | None = None, timeout: float = 600) -> str:
    """Run one podman command on the storage under `root`; its stdout, or PodmanError with its output."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    stdin = input_file.open("rb") if input_file else subprocess.DEVNULL
    try:
        proc = subprocess.run(
            [*_base_args(root), *args],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_env(root),
            cwd=root / "tmp",
        )
    finally:
        if input_file:
            stdin.close()  # type: ignore[union-attr]
    if proc.returncode != 0:
        raise PodmanError(
            f"podman {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )
    return proc.stdout


def ensure_base_image(root: Path | None = None) -> str:
    """The base image's name, building it first when this storage lacks it (locked: one build at a time)."""
    root = root or podman_dir()
    root.mkdir(parents=True, exist_ok=True)
    with (root / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _image_exists(root, BASE_IMAGE):
            _build_base(root)
        for tag in BASE_TAGS:
            if not _image_exists(root, tag):
                podman(root, "tag", BASE_IMAGE, tag)
    return BASE_IMAGE


def _image_exists(root: Path, name: str) -> bool:
    try:
        podman(root, "image", "exists", name, timeout=60)
    except PodmanError:
        return False
    return True


def _build_base(root: Path) -> None:
    """debootstrap a minimal bookworm with python3 (about a minute), then import it as one layer."""
    build = root / "build"
    shutil.rmtree(build, ignore_errors=True)
    rootfs = build / "rootfs"
    rootfs.mkdir(parents=True)
    try:
        proc = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,ca-certificates,procps",
                "bookworm",
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if proc.returncode != 0:
            raise PodmanError(
                f"debootstrap failed ({proc.returncode}): {proc.stdout[-1500:]}{proc.stderr[-1500:]}"
            )
        # Package caches and lists are dead weight in an image.
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / junk, ignore_errors=True)
        tar = build / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True, timeout=600)
        podman(root, "import", "--change", "CMD=/bin/bash", str(tar), BASE_IMAGE)
    finally:
        shutil.rmtree(build, ignore_errors=True)


@contextlib.contextmanager
def podman_service(root: Path | None = None) -> Iterator[str]:
    """Serve the Docker Engine API on a fresh Unix socket under `root`; yields its `unix://` URL. The service
    is stopped by its PID when the block ends (its containers are not: callers remove their own)."""
    root = root or podman_dir()
    run = root / "sockets"
    run.mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    sock = run / f"podman-{os.getpid()}-{time.monotonic_ns() % 10**9}.sock"
    log_path = run / (sock.name + ".log")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*_base_args(root), "system", "service", "--time=0", f"unix://{sock}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_env(root),
            # conmon writes an `oom` marker into its working directory on cgroup v1: keep it in ours.
            cwd=root / "tmp",
            start_new_session=True,
        )
    try:
        _wait_for_socket(proc, sock, log_path)
        yield f"unix://{sock}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        with contextlib.suppress(FileNotFoundError):
            log_path.unlink()
        _release_storage_mount(root)


def _release_storage_mount(root: Path) -> None:
    """containers/storage bind-mounts its overlay dir onto itself and leaves it mounted; drop that mount so the
    tree can be deleted (umount refuses, harmlessly, while another podman still has layers mounted there)."""
    overlay = str((root / "storage" / "overlay").resolve())
    # os.path.ismount misses a bind mount within one file system: ask the kernel's mount table
    with open("/proc/self/mountinfo") as table:
        mounted = any(line.split()[4] == overlay for line in table)
    if mounted:
        subprocess.run(["umount", overlay], capture_output=True, check=False)


def _wait_for_socket(proc: subprocess.Popen[bytes], sock: Path, log_path: Path) -> None:
    import socket

    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise PodmanError(
                f"podman system service exited ({proc.returncode}): {log_path.read_text()[-2000:]}"
            )
        if sock.exists():
            with contextlib.suppress(OSError):
                conn = socket.socket(socket.AF_UNIX)
                conn.settimeout(5)
                conn.connect(str(sock))
                conn.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                reply = conn.recv(64)
                conn.close()
                if reply.startswith(b"HTTP/1.") and b" 200" in reply[:16]:
                    return
        if time.monotonic() > deadline:
            raise PodmanError(
                f"podman system service did not answer within 60 s: {log_path.read_text()[-2000:]}"
            )
        time.sleep(0.05)


def main() -> None:
    """`python -m rock_admin.engines.podman [DIR]`: build the base image (once) and print its name."""
    import sys

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    try:
        print(ensure_base_image(root))
    except (PodmanError, OSError, subprocess.SubprocessError) as exc:
        sys.exit(f"rock-admin: {exc}")


if __name__ == "__main__":
    main()
