"""Start a program with its stdout/stderr on pipes read by the event loop, and await its exit.

`subprocess.Popen` (vfork in the C child, no Python) and a pidfd, never the event loop's own spawner: uvloop
forks the whole interpreter (3-5 ms at the rocklet's size, most of `/execute`) and asyncio's default watcher
starts a thread per child. Readers get each chunk through a callback, so the caller decides what is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import subprocess
from collections.abc import Callable, Mapping

#: Bytes per read from a pipe (the kernel's default pipe holds 64 KiB).
_CHUNK = 1 << 16


def argv_of(command: str | list[str], shell: bool) -> str | list[str]:
    """What `Popen` runs: the shell text (with `shell`) or the argument list."""
    if shell:
        return command if isinstance(command, str) else shlex.join(command)
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if not argv:
        raise ValueError("command: empty")
    return argv


class Child:
    """A started program: `exited` resolves to its exit code (negative: killed by that signal), `drained`
    once both pipes reached end of file. `sinks` get every chunk read from stdout / stderr."""

    def __init__(
        self,
        command: str | list[str],
        *,
        shell: bool,
        env: Mapping[str, str] | None,
        cwd: str | None,
        merge_output: bool,
        stdout: Callable[[bytes], None],
        stderr: Callable[[bytes], None],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.proc = subprocess.Popen(
            argv_of(command, shell),
            shell=shell,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self.exited: asyncio.Future[int] = self._loop.create_future()
        self.drained: asyncio.Future[None] = self._loop.create_future()
        self._pipes: dict[int, Callable[[bytes], None]] = {}
        for pipe, sink in ((self.proc.stdout, stdout), (self.proc.stderr, stderr)):
            if pipe is not None:
                fd = pipe.fileno()
                os.set_blocking(fd, False)
                self._pipes[fd] = sink
                self._loop.add_reader(fd, self._on_readable, fd)
        self._pidfd = -1
        try:
            self._pidfd = os.pidfd_open(self.pid)
            self._loop.add_reader(self._pidfd, self._on_exit)
        except (AttributeError, OSError):  # no pidfd (kernel < 5.3): a thread blocks in waitpid
            self._loop.run_in_executor(None, self.proc.wait).add_done_callback(lambda _: self._on_exit())

    def _on_readable(self, fd: int) -> None:
        try:
            chunk = os.read(fd, _CHUNK)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            self._pipes[fd](chunk)
        else:
            self._close_pipe(fd)

    def _close_pipe(self, fd: int) -> None:
        self._loop.remove_reader(fd)
        del self._pipes[fd]
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed and pipe.fileno() == fd:
                pipe.close()
        if not self._pipes and not self.drained.done():
            self.drained.set_result(None)

    def _on_exit(self) -> None:
        code = self.proc.poll()
        if code is None:  # woken before the kernel made it reapable
            return
        if self._pidfd >= 0:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        if not self.exited.done():
            self.exited.set_result(code)

    def close_pipes(self) -> None:
        """Stop reading (a descendant that outlives the program may hold the pipes open for ever)."""
        for fd in list(self._pipes):
            self._close_pipe(fd)
        if not self.drained.done():
            self.drained.set_result(None)

    async def settle(self, grace: float) -> None:
        """After the exit: take what the pipes still hold, waiting at most `grace` s for their end of file."""
        if not self.drained.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.drained), grace)
        self.close_pipes()
