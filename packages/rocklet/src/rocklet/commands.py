"""`/execute`: run a program to completion with bounded output capture and a real timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import subprocess

from rock.actions import Command, CommandResponse
from rock.exceptions import CommandTimeoutError, NonZeroExitCodeError
from rocklet.sessions.output import OutputBuffer


async def _drain(stream: asyncio.StreamReader | None, buffer: OutputBuffer) -> None:
    if stream is None:
        return
    while chunk := await stream.read(1 << 16):
        buffer.append(chunk)


def _argv(command: Command) -> tuple[str | None, list[str] | None]:
    """(shell string, argv): exactly one is set."""
    if command.shell:
        text = command.command if isinstance(command.command, str) else shlex.join(command.command)
        return text, None
    argv = shlex.split(command.command) if isinstance(command.command, str) else list(command.command)
    if not argv:
        raise ValueError("command: empty")
    return None, argv


async def execute(command: Command, *, max_output_bytes: int) -> CommandResponse:
    """Run `command`; on timeout kill its whole process group and raise `CommandTimeoutError`."""
    shell_text, argv = _argv(command)
    env = {**os.environ, **command.env} if command.env is not None else None
    kwargs = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.STDOUT if command.merge_output_streams else subprocess.PIPE,
        "env": env,
        "cwd": command.cwd,
        "start_new_session": True,
    }
    if shell_text is not None:
        proc = await asyncio.create_subprocess_shell(shell_text, **kwargs)
    else:
        assert argv is not None
        proc = await asyncio.create_subprocess_exec(*argv, **kwargs)
    stdout, stderr = OutputBuffer(max_output_bytes), OutputBuffer(max_output_bytes)
    pumps = asyncio.gather(_drain(proc.stdout, stdout), _drain(proc.stderr, stderr))
    try:
        await asyncio.wait_for(asyncio.shield(proc.wait()), command.timeout)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        await _settle(pumps)
        raise CommandTimeoutError(
            f"Timeout ({command.timeout}s) exceeded while running command {command.command!r}; "
            "its process group was killed",
            extra_info={
                "stdout": stdout.take_all().text(clean=False),
                "stderr": stderr.take_all().text(clean=False),
            },
        ) from None
    # Children that outlive the command may hold the pipes open: read what is there, do not wait for them.
    await _settle(pumps)
    response = CommandResponse(
        stdout=stdout.take_all().text(clean=False),
        stderr=stderr.take_all().text(clean=False),
        exit_code=proc.returncode,
    )
    if command.check and proc.returncode != 0:
        prefix = f"{command.error_msg}: " if command.error_msg else ""
        raise NonZeroExitCodeError(
            f"{prefix}Command {command.command!r} failed with exit code {proc.returncode}. "
            f"Stdout:\n{response.stdout!r}\nStderr:\n{response.stderr!r}",
            extra_info=response.model_dump(),
        )
    return response


async def _settle(pumps: asyncio.Future[object], grace: float = 0.2) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(pumps), grace)
    except asyncio.TimeoutError:
        pumps.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pumps
