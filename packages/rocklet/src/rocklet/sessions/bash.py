"""One interactive bash on a pty, driven like a terminal but with exact, fast end-of-command detection.

How a command is run:
- The shell's prompt is a per-session marker that carries the exit code (`__ROCKPS1_<token>_$?__`), re-set by
  `PROMPT_COMMAND` before every prompt so `source venv/bin/activate` and friends cannot break it. The command's
  output is everything the pty printed before the marker, and the exit code comes in the same read.
- The command text travels in one typed line as an ANSI-C quoted string (or, when long, through a file), is
  syntax-checked inside the shell (by defining it as a function body, which parses without running) and then
  `eval`ed, so heredocs and multi-line quotes work and any number of lines yields exactly one prompt.
- The pty has ECHO and ONLCR off and `TERM=dumb`, so there is no echo, no bracketed paste and no `\\r\\n`.
- bash runs with job control, so each command gets its own process group: Ctrl-C reaches it through the tty,
  and escalation kills that group (SIGTERM, SIGKILL), which leaves the shell and its state usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import secrets
import signal
import subprocess
import termios
from collections.abc import Callable
from pathlib import Path

from rock.actions import (
    BashAction,
    BashInterruptAction,
    BashObservation,
    CreateBashSessionRequest,
    CreateBashSessionResponse,
)
from rock.exceptions import (
    BashIncorrectSyntaxError,
    CommandTimeoutError,
    NonZeroExitCodeError,
    SessionBusyError,
    SessionNotInitializedError,
)
from rocklet.sessions.matching import Result, Waiter, compile_expect, earliest_expect
from rocklet.sessions.output import Captured, OutputBuffer
from rocklet.sessions.pty_spawn import Spawned, child_setup, spawn_on_pty
from rocklet.sessions.shell_setup import command_line, rc_text, shell_environment

#: Bytes re-scanned before each new chunk, so a marker split across reads is still found.
_MARKER_OVERLAP = 96
_EXPECT_OVERLAP = 4096


class BashSession:
    """A named bash shell. One command at a time: `run` on a busy session raises `SessionBusyError` at once
    (a second command typed into a terminal would go to the running program's stdin); `interrupt` and `close`
    work while a command is in flight."""

    def __init__(
        self,
        name: str,
        request: CreateBashSessionRequest,
        *,
        state_dir: Path,
        max_output_bytes: int,
        base_env: dict[str, str] | None = None,
        on_exit: Callable[[BashSession], None] | None = None,
    ) -> None:
        self.name = name
        self._base_env = base_env or {}
        self.request = request
        self._state_dir = state_dir
        self._max_output = max_output_bytes
        self._on_exit = on_exit
        self._running: str | None = None  # the command in flight
        self._idle = asyncio.Event()
        self._idle.set()
        self._proc: subprocess.Popen[bytes] | Spawned | None = None
        self._fd = -1
        self._slave_fd = -1
        self._pidfd = -1
        self._out = OutputBuffer(max_output_bytes)
        self._waiter: Waiter | None = None
        self._at_prompt = False
        self._alive = False
        self._restarting = False
        self._closed = False
        self._write_waiters: list[asyncio.Future[None]] = []

    # ------------------------------------------------------------------ lifecycle

    @property
    def alive(self) -> bool:
        return self._alive

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self) -> CreateBashSessionResponse:
        """Start the shell and wait for its first prompt (within `startup_timeout`)."""
        waiter = self._spawn()
        done = await self._wait(waiter, self.request.startup_timeout)
        if not done:
            partial = self._out.take_all().text()
            await self.close()
            raise CommandTimeoutError(
                f"session {self.name!r}: the shell did not show its prompt within startup_timeout="
                f"{self.request.startup_timeout} s (slow startup_source?). Output so far: {partial!r}",
                extra_info={"output": partial},
            )
        result = waiter.future.result()
        if result.kind == "eof":
            await self.close()
            raise SessionNotInitializedError(
                f"session {self.name!r}: the shell exited during startup with code {result.exit_code}: "
                f"{result.captured.text()!r}"
            )
        return CreateBashSessionResponse(output=result.captured.text().strip())

    def _spawn(self) -> Waiter:
        loop = asyncio.get_running_loop()
        self._token = secrets.token_hex(12)
        self._prompt_re = re.compile(rb"__ROCKPS1_" + self._token.encode() + rb"_(\d+)__")
        self._syntax_marker = f"__ROCKSYN_{self._token}__"
        self._cmd_file = self._state_dir / f"cmd-{self._token}"
        rcfile = self._state_dir / f"rc-{self._token}"
        rcfile.write_text(rc_text(self._token, self.request.startup_source, self._syntax_marker))
        user = self._target_user()
        if user is not None:
            os.chown(rcfile, user.pw_uid, user.pw_gid)

        master, slave = os.openpty()
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.ONLCR  # oflag: keep "\n" as is
        attrs[3] &= ~(termios.ECHO | termios.ECHONL)  # lflag: no echo of typed input
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        argv = ["/bin/bash", "--noprofile", "--rcfile", str(rcfile), "-i"]
        env = shell_environment(self.request, self._base_env, user, self._token)
        try:
            if user is None:
                self._proc = spawn_on_pty(argv, env, os.ttyname(slave))
            else:  # switching user needs code between fork and exec (rare: remote_user as a root rocklet)
                self._proc = subprocess.Popen(
                    argv,
                    stdin=slave,
                    stdout=slave,
                    stderr=slave,
                    env=env,
                    start_new_session=True,
                    preexec_fn=child_setup(user),
                    close_fds=True,
                )
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        # Keep the slave open (without it a pty read can fail with EIO between programs) to reset its modes.
        self._slave_fd = slave
        self._fd = master
        os.set_blocking(master, False)
        self._out = OutputBuffer(self._max_output)
        self._alive = True
        self._at_prompt = False
        waiter = self._new_waiter([])
        loop.add_reader(master, self._on_readable)
        try:
            self._pidfd = os.pidfd_open(self._proc.pid)
            loop.add_reader(self._pidfd, self._on_exit_event)
        except (AttributeError, OSError):
            self._pidfd = -1
            self._exit_poller = loop.create_task(self._poll_exit())
        return waiter

    def _target_user(self) -> pwd.struct_passwd | None:
        name = self.request.remote_user
        if not name:
            return None
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            raise ValueError(f"remote_user {name!r} does not exist in this sandbox") from None
        if user.pw_uid == os.geteuid():
            return None
        if os.geteuid() != 0:
            raise PermissionError(f"remote_user {name!r} needs the rocklet to run as root")
        return user

    async def close(self) -> None:
        """Kill the shell and everything in its foreground; release the pty."""
        self._closed = True
        await self._kill_shell()
        for path in (self._cmd_file, self._state_dir / f"rc-{self._token}"):
            with contextlib.suppress(OSError):
                path.unlink()

    async def _kill_shell(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if self._alive:
            with contextlib.suppress(OSError):
                pgrp = os.tcgetpgrp(self._fd)
                if pgrp > 0 and pgrp != proc.pid:
                    os.killpg(pgrp, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            # SIGHUP the session's other jobs the way a closing terminal would.
            for _ in range(200):
                if proc.poll() is not None:
                    break
                await asyncio.sleep(0.005)
            self._handle_exit()
        self._release_fds()

    def _release_fds(self) -> None:
        loop = asyncio.get_running_loop()
        for fd in (self._fd, self._pidfd):
            if fd >= 0:
                loop.remove_reader(fd)
                with contextlib.suppress(OSError):
                    os.close(fd)
        if self._slave_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._slave_fd)
        self._fd = self._pidfd = self._slave_fd = -1

    # ------------------------------------------------------------------ reading the pty

    def _new_waiter(self, expect: list[str]) -> Waiter:
        waiter = Waiter(asyncio.get_running_loop().create_future(), compile_expect(expect))
        self._waiter = waiter
        return waiter

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self._fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            # No writer left on the pty; the exit watcher will finish the story.
            asyncio.get_running_loop().remove_reader(self._fd)
            return
        self._out.append(chunk)
        self._scan(len(chunk))

    def _scan(self, new_bytes: int) -> None:
        data = self._out.data
        start = max(0, len(data) - new_bytes - _MARKER_OVERLAP)
        while True:
            prompt = self._prompt_re.search(data, start)
            waiter = self._waiter
            expect_hit = None
            if waiter is not None and waiter.expect:
                expect_hit = earliest_expect(
                    data, max(0, len(data) - new_bytes - _EXPECT_OVERLAP), waiter.expect
                )
            if expect_hit is not None and (prompt is None or expect_hit[1].start() < prompt.start()):
                text, match = expect_hit
                self._waiter = None
                waiter.future.set_result(
                    Result("expect", self._out.take(match.start(), match.end()), None, text)
                )  # type: ignore[union-attr]
                return
            if prompt is None:
                return
            self._at_prompt = True
            if waiter is not None and not waiter.future.done():
                self._waiter = None
                exit_code = int(prompt.group(1))  # read before take() reshapes the buffer under the match
                captured = self._out.take(prompt.start(), prompt.end())
                waiter.future.set_result(Result("prompt", captured, exit_code))
                start = 0
            else:
                # A prompt nobody waits for (an extra newline typed into the shell): drop the marker.
                del data[prompt.start() : prompt.end()]
                start = prompt.start()

    def _on_exit_event(self) -> None:
        self._handle_exit()
        self._release_fds()

    async def _poll_exit(self) -> None:
        while self._alive and self._proc is not None and self._proc.poll() is None:
            await asyncio.sleep(0.2)
        self._on_exit_event()

    def _handle_exit(self) -> None:
        """The shell exited: drain what it printed, resolve any wait, tell the owner."""
        if not self._alive or self._proc is None:
            return
        code = self._proc.wait()
        self._alive = False
        with contextlib.suppress(OSError):
            while chunk := os.read(self._fd, 1 << 16):
                self._out.append(chunk)
        exit_code = code if code >= 0 else 128 - code
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.future.done():
            waiter.future.set_result(Result("eof", self._out.take_all(), exit_code))
        if self._on_exit is not None and not self._restarting and not self._closed:
            self._on_exit(self)

    async def _wait(self, waiter: Waiter, timeout: float | None) -> bool:
        """Wait for `waiter` without cancelling it; True when it is done."""
        if waiter.future.done():
            return True
        done, _ = await asyncio.wait({waiter.future}, timeout=timeout)
        return bool(done)

    # ------------------------------------------------------------------ writing

    async def _type(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
                view = view[written:]
            except BlockingIOError:
                # The tty's input queue is full (the foreground program is not reading): wait for room.
                loop = asyncio.get_running_loop()
                room = loop.create_future()
                loop.add_writer(self._fd, room.set_result, None)
                try:
                    await room
                finally:
                    loop.remove_writer(self._fd)

    def _no_echo(self) -> None:
        """Programs like a Python REPL may leave echo on; commands must not be echoed back."""
        with contextlib.suppress(OSError, termios.error):
            attrs = termios.tcgetattr(self._slave_fd)
            if attrs[3] & termios.ECHO:
                attrs[3] &= ~(termios.ECHO | termios.ECHONL)
                termios.tcsetattr(self._slave_fd, termios.TCSANOW, attrs)

    def _ensure_alive(self) -> None:
        if not self._alive:
            raise SessionNotInitializedError(f"session {self.name!r}: its shell is not running")

    # ------------------------------------------------------------------ commands

    async def run(self, action: BashAction) -> BashObservation:
        """Run one command; the reply carries its output and exit code."""
        if self._running is not None:
            shown = self._running if len(self._running) <= 200 else self._running[:200] + "..."
            raise SessionBusyError(
                f"session {self.name!r} is busy running {shown!r}: wait for its reply, interrupt it "
                "(action_type bash_interrupt) or use another session",
                extra_info={"running": self._running},
            )
        self._ensure_alive()
        self._running = action.command
        self._idle.clear()
        try:
            return await self._run(action)
        finally:
            self._running = None
            self._idle.set()

    async def _run(self, action: BashAction) -> BashObservation:
        pending = self._out.take_all()
        interactive = action.is_interactive_command or action.is_interactive_quit or not self._at_prompt
        if interactive:
            text = action.command if action.command.endswith("\n") else action.command + "\n"
            line = text.encode("utf-8", "surrogateescape")
        else:
            self._no_echo()
            line = command_line(action.command, self._cmd_file)
        waiter = self._new_waiter(action.expect)
        self._at_prompt = False
        await self._type(line)
        result = await self._finish(waiter, action)
        if result.kind == "prompt" and self._syntax_marker.encode() in result.captured.tail:
            result = await self._syntax_error(action)
        return self._observe(action, result, pending, interactive)

    async def _finish(self, waiter: Waiter, action: BashAction) -> Result:
        if await self._wait(waiter, action.timeout):
            return waiter.future.result()
        how = await self._recover(waiter, timeout=0.5, n_retry=2)
        result = waiter.future.result() if waiter.future.done() else None
        output = result.captured.text() if result else ""
        raise CommandTimeoutError(
            f"timeout after {action.timeout} seconds while running command {action.command!r}; "
            f"the command was stopped ({how}) and the session is ready for the next one",
            extra_info={
                "output": output,
                "exit_code": result.exit_code if result else None,
                "stopped_by": how,
            },
        )

    async def _syntax_error(self, action: BashAction) -> Result:
        """The in-shell check failed. Ask `bash -n` for the message; if it accepts the text after all, run it."""
        proc = await asyncio.create_subprocess_exec(
            "/bin/bash",
            "-n",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        stdout, stderr = await proc.communicate(action.command.encode("utf-8", "surrogateescape"))
        if proc.returncode != 0:
            out, err = stdout.decode(errors="backslashreplace"), stderr.decode(errors="backslashreplace")
            raise BashIncorrectSyntaxError(
                f"Error ({proc.returncode}) while checking bash command \n{action.command}\n"
                f"---- Stderr ----\n{err}\n---- Stdout ----\n{out}",
                extra_info={"bash_stdout": out, "bash_stderr": err},
            )
        waiter = self._new_waiter(action.expect)
        self._at_prompt = False
        await self._type(command_line(action.command, self._cmd_file, checked=False))
        return await self._finish(waiter, action)

    def _observe(
        self, action: BashAction, result: Result, pending: Captured, interactive: bool
    ) -> BashObservation:
        captured = result.captured.prepend(pending)
        output = captured.text()
        failure = ""
        if captured.dropped:
            failure = f"output truncated: {captured.dropped} bytes dropped (rocklet max_output_bytes)"
        exit_code = result.exit_code
        if result.kind == "eof":
            failure = f"the session's shell exited with code {exit_code}; the session is closed"
        if interactive:
            stripped = output.lstrip()
            command = action.command.strip()
            if command and stripped.startswith(command):
                stripped = stripped[len(command) :]
            output = stripped.strip()
            if result.kind == "expect":
                exit_code = 0
            if action.is_interactive_quit:
                self._no_echo()
        if action.check == "raise" and exit_code not in (0, None) and result.kind != "expect":
            prefix = f"{action.error_msg}: " if action.error_msg else ""
            raise NonZeroExitCodeError(
                f"{prefix}Command {action.command!r} failed with exit code {exit_code}. Here is the output:\n{output!r}",
                extra_info={"output": output, "exit_code": exit_code},
            )
        return BashObservation(
            output=output, exit_code=exit_code, failure_reason=failure, expect_string=result.expect_string
        )

    # ------------------------------------------------------------------ interrupt

    async def interrupt(self, action: BashInterruptAction) -> BashObservation:
        """Stop whatever runs in the foreground: Ctrl-C, then kill its process group, then restart the shell."""
        self._ensure_alive()
        waiter = self._waiter
        own = waiter is None or waiter.future.done()
        if own:
            if self._at_prompt:
                return BashObservation(output=self._out.take_all().text(), exit_code=0)
            waiter = self._new_waiter(action.expect)
        assert waiter is not None
        how = await self._recover(waiter, timeout=action.timeout, n_retry=action.n_retry)
        output = ""
        if own and waiter.future.done():
            output = waiter.future.result().captured.text()
        if not own:
            # The interrupted command's request is finishing: let it, so a command sent after this reply
            # finds the session free.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), 5.0)
        reason = "" if how == "Ctrl-C" else f"interrupt escalated: {how}"
        return BashObservation(output=output, exit_code=0, failure_reason=reason)

    async def _recover(self, waiter: Waiter, *, timeout: float, n_retry: int) -> str:
        """Bring the shell back to its prompt; say how."""
        timeout = max(timeout, 0.05)
        for _ in range(max(n_retry, 1)):
            if not self._alive:
                return "the shell exited"
            await self._type(b"\x03")
            if await self._wait(waiter, timeout):
                return "Ctrl-C"
        pgrp = self._foreground_group()
        if pgrp is not None:
            for sig, wait in ((signal.SIGTERM, max(timeout, 0.5)), (signal.SIGKILL, 2.0)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgrp, sig)
                if await self._wait(waiter, wait):
                    return f"killed process group {pgrp} with {sig.name}"
        await self._restart()
        return "the shell did not come back, so it was restarted (shell state is lost)"

    def _foreground_group(self) -> int | None:
        try:
            pgrp = os.tcgetpgrp(self._fd)
        except OSError:
            return None
        if self._proc is None or pgrp <= 0 or pgrp == self._proc.pid:
            return None
        return pgrp

    async def _restart(self) -> None:
        self._restarting = True
        try:
            await self._kill_shell()
            waiter = self._spawn()
            await self._wait(waiter, max(self.request.startup_timeout, 5.0))
        finally:
            self._restarting = False
