"""Host facts every runtime needs: which process a pid names, socket path limits, the interpreter's paths."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import sys
from pathlib import Path


def pid_start(pid: int) -> int:
    """The process's start time (clock ticks since boot): with the pid, it names one process for good."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


#: Longest Unix socket path the kernel takes (sun_path is 108 bytes with the terminating NUL).
UDS_MAX = 107


def short_path(path: str) -> str:
    """`path`, or the same file reached through `/proc/self/fd/N/` (an O_PATH fd on its directory, kept open
    for the process's life) when it is too long for a Unix socket address."""
    if len(path) <= UDS_MAX:
        return path
    directory, name = os.path.split(path)
    return f"{directory_via_fd(directory)}/{name}"


def directory_via_fd(directory: str) -> str:
    """`/proc/self/fd/N`: `directory` through an O_PATH fd opened once and kept for the process's life."""
    fd = _DIR_FDS.get(directory)
    if fd is None:
        fd = _DIR_FDS[directory] = os.open(directory, os.O_PATH | os.O_DIRECTORY)
    return f"/proc/self/fd/{fd}"


_DIR_FDS: dict[str, int] = {}


def python_paths() -> list[str]:
    """Host paths the rocklet's interpreter needs, for images that are not the host's root."""
    paths = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix)}
    cwd = os.getcwd()
    # sys.path entries, less the working directory `python -m` puts first (it may be anything).
    paths.update(os.path.realpath(p) for p in sys.path if p and p != cwd and os.path.isdir(p))
    kept: list[str] = []
    for p in sorted(paths):
        if p != "/" and not any(p.startswith(k + "/") for k in kept):
            kept.append(p)
    return kept


#: At most this much of a sandbox's exit.json and rocklet.log is read (they are the sandbox's to write).
EXIT_JSON_MAX = 4096
LOG_TAIL_MAX = 4096


def read_sandbox_file(directory: Path, name: str, limit: int, tail: bool = True, owner: int = -1) -> bytes:
    """At most `limit` bytes (the last ones with `tail`) of the regular file `name` (owned by `owner`, when
    given) in a directory the sandbox writes to, never following a link there: the sandbox may have swapped
    the file for a link to a host file."""
    dir_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        # O_NONBLOCK: a FIFO planted there must not hang the admin (a regular file ignores the flag).
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"{name} is not a regular file")
        if owner >= 0 and st.st_uid != owner:
            raise OSError(errno.EPERM, f"{name} is not owned by uid {owner}")
        if not tail and st.st_size > limit:
            raise OSError(errno.EFBIG, f"{name} is over {limit} bytes")
        return os.pread(fd, limit, max(0, st.st_size - limit) if tail else 0)
    finally:
        os.close(fd)


def rocklet_end(run_dir: Path) -> tuple[str, str]:
    """What the rocklet's init wrote of the rocklet's end in `exit.json` (empty when absent: written as the
    admin's uid, never the sandbox's own files) and the tail of its log."""
    end = tail = ""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        data = json.loads(
            read_sandbox_file(run_dir, "exit.json", EXIT_JSON_MAX, tail=False, owner=os.geteuid())
        )
        end = str(data.get("reason", "rocklet exited"))[:200]
    with contextlib.suppress(OSError):
        tail = read_sandbox_file(run_dir, "rocklet.log", LOG_TAIL_MAX).decode(errors="replace")[-500:].strip()
    return end, tail
