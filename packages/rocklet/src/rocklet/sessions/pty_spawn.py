"""Starting a child on a pty as its session leader, with the pty as its controlling terminal: `posix_spawn`
for the shell (no Python in the child), and the `preexec_fn` used where the shell runs as another user."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import signal
import termios
from collections.abc import Callable


def child_setup(user: pwd.struct_passwd) -> Callable[[], None]:
    def setup() -> None:  # runs in the child between fork and exec
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        os.initgroups(user.pw_name, user.pw_gid)
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    return setup


#: What `subprocess`'s `restore_signals=True` resets to the default disposition before exec.
_RESTORED_SIGNALS = tuple(getattr(signal, n) for n in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, n))


def _inheritable_fds() -> list[int]:
    """Open descriptors above 2 that would survive exec (most are close-on-exec already, PEP 446)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return []
    fds = []
    for name in names:
        fd = int(name)
        if fd > 2:
            with contextlib.suppress(OSError):  # includes the listdir's own, now closed, descriptor
                if os.get_inheritable(fd):
                    fds.append(fd)
    return fds


class Spawned:
    """The few `subprocess.Popen` members the session uses, for a child started with `os.posix_spawn`."""

    __slots__ = ("pid", "returncode")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def _reap(self, flags: int) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, flags)
            except ChildProcessError:  # reaped elsewhere: the exit status is lost
                self.returncode = 255
            else:
                if pid == self.pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self) -> int | None:
        return self._reap(os.WNOHANG)

    def wait(self) -> int:
        code = self._reap(0)
        assert code is not None
        return code


def spawn_on_pty(argv: list[str], env: dict[str, str], slave_path: str) -> Spawned:
    """Start `argv` as a session leader whose stdio and controlling terminal is the pty at `slave_path`.

    `posix_spawn` (vfork-like, no Python in the child) instead of `Popen(preexec_fn=...)`, which forks the
    whole interpreter: the child calls setsid() before its file actions, and on Linux a session leader with no
    controlling terminal acquires the first tty it opens without O_NOCTTY, so fd 0 makes it the ctty.
    """
    # close_fds=True: no rocklet descriptor reaches bash.
    actions: list[tuple[object, ...]] = [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds()]
    actions += [
        (os.POSIX_SPAWN_OPEN, 0, slave_path, os.O_RDWR, 0),
        (os.POSIX_SPAWN_DUP2, 0, 1),
        (os.POSIX_SPAWN_DUP2, 0, 2),
    ]
    pid = os.posix_spawn(
        argv[0],
        argv,
        env,
        file_actions=actions,
        setsid=True,
        setsigdef=_RESTORED_SIGNALS,
        setsigmask=(),
    )
    return Spawned(pid)
