"""Host facts every runtime needs: which process a pid names, socket path limits, the interpreter's paths."""

from __future__ import annotations

import os
import sys


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
