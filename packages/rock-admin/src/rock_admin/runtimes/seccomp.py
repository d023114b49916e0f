"""A seccomp-BPF syscall filter for sandbox code, after Docker's default profile (ctypes only, x86_64/aarch64).

Docker's profile is an allow-list whose effect, for a container without CAP_SYS_ADMIN, is to deny the syscalls
below with EPERM; this is the same deny-list written out, so it needs no libseccomp:

- the kernel keyring (add_key, request_key, keyctl): keys are not namespaced, a key added in one sandbox is
  readable in every other and on the host;
- kernel modules, kexec, bpf, perf_event_open, io_uring (Docker ≥ 25 blocks it: it runs I/O that seccomp
  never sees), userfaultfd, fanotify_init, lookup_dcookie, open_by_handle_at/name_to_handle_at (a file handle
  opens files outside the sandbox's mounts), quotactl, nfsservctl, syslog, sysfs, uselib, _sysctl, vhangup;
- the mount API (mount, umount2, pivot_root, move_mount, fsopen, fsconfig, fsmount, fspick, open_tree,
  open_tree_attr, mount_setattr): a sandbox's mounts are built before the filter goes on and stay as built;
- new namespaces: unshare and setns, and clone with a CLONE_NEW* flag (Docker's rule without CAP_SYS_ADMIN);
  clone3, whose flags sit in memory a filter cannot read, gets ENOSYS so that libc falls back to clone;
- the clock (settimeofday, clock_settime, adjtimex, clock_adjtime), swapon/swapoff, reboot, acct, iopl/ioperm;
- personality with any value other than Docker's five (PER_LINUX, PER_LINUX32, UNAME26 and those combined,
  0xffffffff to query).

`ptrace` (and process_vm_readv/writev, kcmp) stay allowed, as in Docker on kernels ≥ 4.8: seccomp is re-checked
after a tracer changes a syscall, and a sandbox's own pid namespace holds no process outside it to trace.

Other architectures are killed (SECCOMP_RET_KILL_PROCESS): i386 through `int 0x80` on x86_64 (where vm86
lives), arm32 compat on aarch64, and the x32 ABI (syscall numbers with bit 30 set) on x86_64.

The caller (the sandbox's init, e.g. the process runtime's zygote child) calls `install_sandbox_filter()`:
- after the sandbox's mounts and namespaces are built (from then on mount and unshare fail),
- in the process that then runs (or forks and execs) sandbox code: the filter and no_new_privs are inherited
  by every child and kept across execve, and can never be removed, only narrowed by more filters,
- single-threaded or not (TSYNC puts the filter on every thread of the process).
It sets no_new_privs first (required without CAP_SYS_ADMIN, and it makes a planted setuid file run without
gaining privileges); it raises OSError when the kernel refuses, so a sandbox is never started unfiltered.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import os
import platform
from dataclasses import dataclass

# BPF instruction classes and fields (linux/filter.h, linux/bpf_common.h).
_LD_W_ABS = 0x00 | 0x00 | 0x20
_JEQ = 0x05 | 0x10 | 0x00
_JGE = 0x05 | 0x30 | 0x00
_JSET = 0x05 | 0x40 | 0x00
_RET = 0x06 | 0x00

# seccomp return actions (linux/seccomp.h).
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6] (little endian here).
_OFF_NR = 0
_OFF_ARCH = 4
_OFF_ARG0 = 16

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
#: clone's flags that make a namespace (CLONE_NEWTIME shares its bit with the exit signal in clone's flags).
CLONE_NAMESPACES = (
    CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
)
#: personality values Docker allows: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, query.
PERSONALITY_ALLOWED = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

#: Denied with EPERM on every architecture that has them.
DENIED = (
    "add_key", "request_key", "keyctl",
    "init_module", "finit_module", "delete_module", "create_module", "get_kernel_syms", "query_module",
    "kexec_load", "kexec_file_load",
    "bpf", "perf_event_open", "userfaultfd", "fanotify_init", "lookup_dcookie",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "open_by_handle_at", "name_to_handle_at",
    "mount", "umount2", "pivot_root", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "open_tree",
    "open_tree_attr", "mount_setattr",
    "unshare", "setns",
    "swapon", "swapoff", "reboot", "acct",
    "settimeofday", "clock_settime", "adjtimex", "clock_adjtime",
    "iopl", "ioperm",
    "quotactl", "quotactl_fd", "nfsservctl", "syslog", "sysfs", "uselib", "_sysctl", "vhangup",
)  # fmt: skip

# Syscall numbers shared by both architectures (the unified table from 424 on).
_COMMON = {
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435,
    "mount_setattr": 442, "quotactl_fd": 443, "open_tree_attr": 467,
}  # fmt: skip


@dataclass(frozen=True)
class Arch:
    name: str
    audit: int
    #: The x32 ABI shares AUDIT_ARCH_X86_64: its calls are told apart by X32_SYSCALL_BIT.
    has_x32: bool
    syscalls: dict[str, int]


ARCHES = {
    "x86_64": Arch("x86_64", AUDIT_ARCH_X86_64, True, {**_COMMON, **{
        "add_key": 248, "request_key": 249, "keyctl": 250,
        "init_module": 175, "finit_module": 313, "delete_module": 176, "create_module": 174,
        "get_kernel_syms": 177, "query_module": 178, "kexec_load": 246, "kexec_file_load": 320,
        "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "fanotify_init": 300, "lookup_dcookie": 212,
        "open_by_handle_at": 304, "name_to_handle_at": 303,
        "mount": 165, "umount2": 166, "pivot_root": 155, "unshare": 272, "setns": 308,
        "swapon": 167, "swapoff": 168, "reboot": 169, "acct": 163,
        "settimeofday": 164, "clock_settime": 227, "adjtimex": 159, "clock_adjtime": 305,
        "iopl": 172, "ioperm": 173, "quotactl": 179, "nfsservctl": 180, "syslog": 103, "sysfs": 139,
        "uselib": 134, "_sysctl": 156, "vhangup": 153,
        "clone": 56, "personality": 135, "seccomp": 317,
    }}),
    "aarch64": Arch("aarch64", AUDIT_ARCH_AARCH64, False, {**_COMMON, **{
        "add_key": 217, "request_key": 218, "keyctl": 219,
        "init_module": 105, "finit_module": 273, "delete_module": 106,
        "kexec_load": 104, "kexec_file_load": 294,
        "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "fanotify_init": 262, "lookup_dcookie": 18,
        "open_by_handle_at": 265, "name_to_handle_at": 264,
        "mount": 40, "umount2": 39, "pivot_root": 41, "unshare": 97, "setns": 268,
        "swapon": 224, "swapoff": 225, "reboot": 142, "acct": 89,
        "settimeofday": 170, "clock_settime": 112, "adjtimex": 171, "clock_adjtime": 266,
        "quotactl": 60, "nfsservctl": 42, "syslog": 116, "vhangup": 58,
        "clone": 220, "personality": 92, "seccomp": 277,
    }}),
}  # fmt: skip

#: One BPF instruction: (code, jt, jf, k), as in struct sock_filter.
Instruction = tuple[int, int, int, int]


@functools.cache
def build_filter(machine: str) -> list[Instruction]:
    """The filter's BPF program for `machine` (`platform.machine()`'s name: x86_64, aarch64)."""
    if machine not in ARCHES:
        raise OSError(errno.ENOSYS, f"seccomp filter: no syscall table for architecture {machine!r}")
    arch = ARCHES[machine]
    nrs = arch.syscalls
    # Instructions with symbolic jump targets (a label, or None for the next one); a bare string labels the
    # instruction after it.
    prog: list[str | tuple[int, str | None, str | None, int]] = [
        (_LD_W_ABS, None, None, _OFF_ARCH),
        (_JEQ, None, "kill", arch.audit),
        (_LD_W_ABS, None, None, _OFF_NR),
    ]
    if arch.has_x32:
        prog.append((_JGE, "x32", None, X32_SYSCALL_BIT))
    prog += [(_JEQ, "eperm", None, nrs[name]) for name in DENIED if name in nrs]
    prog += [
        (_JEQ, "enosys", None, nrs["clone3"]),
        (_JEQ, "clone", None, nrs["clone"]),
        (_JEQ, "personality", None, nrs["personality"]),
        (_RET, None, None, RET_ALLOW),
        "clone",
        (_LD_W_ABS, None, None, _OFF_ARG0),
        (_JSET, "eperm", "allow", CLONE_NAMESPACES),
        "personality",
        (_LD_W_ABS, None, None, _OFF_ARG0),
        *[(_JEQ, "allow", None, value) for value in PERSONALITY_ALLOWED],
        (_RET, None, None, RET_ERRNO | errno.EPERM),
        # nr -1 is what a tracer sets to skip a call: the kernel answers ENOSYS, so may the filter.
        "x32",
        (_JEQ, "allow", "kill", 0xFFFFFFFF),
        "allow",
        (_RET, None, None, RET_ALLOW),
        "eperm",
        (_RET, None, None, RET_ERRNO | errno.EPERM),
        "enosys",
        (_RET, None, None, RET_ERRNO | errno.ENOSYS),
        "kill",
        (_RET, None, None, RET_KILL_PROCESS),
    ]
    return _assemble(prog)


def _assemble(prog: list[str | tuple[int, str | None, str | None, int]]) -> list[Instruction]:
    """Resolve labels into jump offsets (relative to the next instruction, 0..255 in classic BPF)."""
    labels: dict[str, int] = {}
    plain: list[tuple[int, str | None, str | None, int]] = []
    for entry in prog:
        if isinstance(entry, str):
            labels[entry] = len(plain)
        else:
            plain.append(entry)
    out = []
    for i, (code, jt, jf, k) in enumerate(plain):
        offsets = [0 if target is None else labels[target] - i - 1 for target in (jt, jf)]
        if any(not 0 <= off <= 255 for off in offsets):
            raise ValueError(f"seccomp filter: jump out of range at instruction {i}")
        out.append((code, offsets[0], offsets[1], k))
    return out


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


PR_SET_NO_NEW_PRIVS = 38
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1


@functools.cache
def _libc() -> ctypes.CDLL:
    """The process's libc, loaded once (find_library runs ldconfig: too slow for every sandbox start)."""
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def preload() -> None:
    """Build this machine's program and load libc now: a process that forks sandboxes does it once for all."""
    with contextlib.suppress(OSError):
        build_filter(platform.machine())
    _libc()


def install_sandbox_filter() -> None:
    """Set no_new_privs and put the filter on every thread of this process (and so on all it starts)."""
    machine = platform.machine()
    program = build_filter(machine)
    libc = _libc()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")
    filters = (_SockFilter * len(program))(*program)
    fprog = _SockFprog(len(program), filters)
    result = libc.syscall(
        ctypes.c_long(ARCHES[machine].syscalls["seccomp"]),
        ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
        ctypes.c_uint(SECCOMP_FILTER_FLAG_TSYNC),
        ctypes.byref(fprog),
    )
    if result != 0:
        err = ctypes.get_errno()
        detail = os.strerror(err) if result < 0 else f"thread {result} could not be synchronised"
        raise OSError(err or errno.EAGAIN, f"seccomp(SECCOMP_SET_MODE_FILTER): {detail}")
