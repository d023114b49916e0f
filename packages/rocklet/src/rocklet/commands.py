"""`/execute`: run a program to completion with bounded output capture and a real timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from rock.actions import Command, CommandResponse
from rock.exceptions import CommandTimeoutError, NonZeroExitCodeError
from rocklet.child import Child
from rocklet.sessions.output import OutputBuffer

#: After the exit, how long to wait for output still in the pipes (a descendant may hold them open).
_SETTLE_SECONDS = 0.2


async def execute(command: Command, *, max_output_bytes: int) -> CommandResponse:
    """Run `command`; on timeout kill its whole process group and raise `CommandTimeoutError`."""
    env = {**os.environ, **command.env} if command.env is not None else None
    stdout, stderr = OutputBuffer(max_output_bytes), OutputBuffer(max_output_bytes)
    child = Child(
        command.command,
        shell=command.shell,
        env=env,
        cwd=command.cwd,
        merge_output=command.merge_output_streams,
        stdout=stdout.append,
        stderr=stderr.append,
    )
    try:
        code = await asyncio.wait_for(asyncio.shield(child.exited), command.timeout)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        await child.exited
        await child.settle(_SETTLE_SECONDS)
        raise CommandTimeoutError(
            f"Timeout ({command.timeout}s) exceeded while running command {command.command!r}; "
            "its process group was killed",
            extra_info={
                "stdout": stdout.take_all().text(clean=False),
                "stderr": stderr.take_all().text(clean=False),
            },
        ) from None
    finally:
        if not child.exited.done():  # the request was cancelled: the program must not outlive it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            child.close_pipes()
    await child.settle(_SETTLE_SECONDS)
    response = CommandResponse(
        stdout=stdout.take_all().text(clean=False),
        stderr=stderr.take_all().text(clean=False),
        exit_code=code,
    )
    if command.check and code != 0:
        prefix = f"{command.error_msg}: " if command.error_msg else ""
        raise NonZeroExitCodeError(
            f"{prefix}Command {command.command!r} failed with exit code {code}. "
            f"Stdout:\n{response.stdout!r}\nStderr:\n{response.stderr!r}",
            extra_info=response.model_dump(),
        )
    return response
