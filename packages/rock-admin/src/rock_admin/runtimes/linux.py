"""The Linux system calls the process runtime needs that Python 3.11's `os` lacks (ctypes, x86_64/arm64)."""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import platform
import socket
import struct

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_ALL = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_IDMAP = 0x100000
OPEN_TREE_CLONE = 1
AT_EMPTY_PATH = 0x1000

_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "mount_setattr": 442, "capset": 126, "open_tree": 428},
    "aarch64": {"pivot_root": 41, "mount_setattr": 442, "capset": 91, "open_tree": 428},
}[platform.machine()]

PR_CAPBSET_DROP = 24
#: Capabilities a sandbox keeps (Docker's default set minus MKNOD): no SYS_ADMIN, so no remounting the
#: read-only root, no new mounts, no escaping the namespaces.
KEEP_CAPS = (0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 29, 31)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    enc = [None if s is None else s.encode() for s in (source, target, fstype, data)]
    _check(_libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]), f"mount {target}")


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(
        _libc.syscall(ctypes.c_long(_SYSCALLS["pivot_root"]), new_root.encode(), put_old.encode()),
        "pivot_root",
    )


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def make_tree_readonly(path: str) -> None:
    """Every mount at and under `path` read-only and nosuid, in one call (Linux >= 5.12)."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0)
    _check(
        _libc.syscall(
            ctypes.c_long(_SYSCALLS["mount_setattr"]),
            ctypes.c_int(AT_FDCWD),
            path.encode(),
            ctypes.c_uint(AT_RECURSIVE),
            ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)),
        ),
        f"mount_setattr {path}",
    )


def idmapped_tree(path: str, userns_fd: int) -> int:
    """A detached copy of the mount at `path` (not its submounts) whose owners read through the id map of the
    user namespace `userns_fd` (Linux >= 5.12; tmpfs >= 6.3); an fd, usable as `/proc/self/fd/N`."""
    fd = _libc.syscall(
        ctypes.c_long(_SYSCALLS["open_tree"]),
        ctypes.c_int(AT_FDCWD),
        path.encode(),
        ctypes.c_uint(OPEN_TREE_CLONE | os.O_CLOEXEC),
    )
    if fd < 0:
        _check(-1, f"open_tree {path}")
    attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    try:
        _check(
            _libc.syscall(
                ctypes.c_long(_SYSCALLS["mount_setattr"]),
                ctypes.c_int(fd),
                b"",
                ctypes.c_uint(AT_EMPTY_PATH),
                ctypes.byref(attr),
                ctypes.c_size_t(ctypes.sizeof(attr)),
            ),
            f"mount_setattr idmap {path}",
        )
    except OSError:
        os.close(fd)
        raise
    return fd


PR_SET_DUMPABLE = 4


def set_dumpable(dumpable: bool) -> None:
    _check(_libc.prctl(PR_SET_DUMPABLE, int(dumpable), 0, 0, 0), "prctl(PR_SET_DUMPABLE)")


def loopback_up() -> None:
    """Bring `lo` up in a fresh network namespace (it starts down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = 0x1 | 0x8 | 0x40  # IFF_UP | IFF_LOOPBACK | IFF_RUNNING
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", flags, b"\0" * 14))  # SIOCSIFFLAGS


def drop_capabilities(keep: tuple[int, ...] = KEEP_CAPS) -> None:
    """Shrink the bounding set and the current sets to `keep` (survives exec: root's children get no more)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
    except OSError:
        last = 40
    for cap in range(last + 1):
        if cap not in keep:
            _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    mask = 0
    for cap in keep:
        mask |= 1 << cap
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    lo, hi = mask & 0xFFFFFFFF, mask >> 32
    data = (ctypes.c_uint32 * 6)(lo, lo, lo, hi, hi, hi)  # effective, permitted, inheritable (x2 words)
    _check(_libc.syscall(ctypes.c_long(_SYSCALLS["capset"]), header, data), "capset")
