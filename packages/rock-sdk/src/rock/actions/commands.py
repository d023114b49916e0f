"""One-shot commands (`POST /execute`), independent of any session."""

from __future__ import annotations

from typing import Literal

from rock.actions.base import SandboxRequest, WireModel


class Command(SandboxRequest):
    """Run a program to completion and return its output.

    A list is executed as is. A string runs through `/bin/sh -c` with `shell=True`, else it is split like a
    shell would (`shlex.split`). `timeout` is in seconds (`None` waits for ever; ROCK's default is 1200): on
    timeout the process group is killed and `CommandTimeoutError` raised. `env` is added to the rocklet's
    environment. `check=True` raises `NonZeroExitCodeError` on a non-zero exit.
    """

    session_type: Literal["bash"] = "bash"
    command: str | list[str]
    timeout: float | None = 1200
    shell: bool = False
    check: bool = False
    error_msg: str = ""
    env: dict[str, str] | None = None
    cwd: str | None = None
    merge_output_streams: bool = False


class CommandResponse(WireModel):
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
