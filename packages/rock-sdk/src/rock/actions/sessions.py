"""Bash sessions: create, run (bash and bash_interrupt actions), close. Field names and defaults as upstream."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from rock.actions.base import SandboxRequest, WireModel


class CreateBashSessionRequest(SandboxRequest):
    """`POST /create_session`.

    `env_enable=False` starts the shell with a small environment (PATH, HOME, USER, LANG, LC_ALL, SHELL, TZ,
    TMPDIR from the rocklet); `True` passes the rocklet's whole environment. `env` is added on top either way.
    `startup_source` files are sourced before the first prompt; the session must be ready within
    `startup_timeout` seconds. `remote_user` runs the shell as that user (the rocklet must run as root).
    """

    session_type: Literal["bash"] = "bash"
    session: str = "default"
    startup_source: list[str] = Field(default_factory=list)
    startup_timeout: float = 1.0
    env_enable: bool = False
    env: dict[str, str] | None = None
    remote_user: str | None = None
    #: Accepted for ROCK compatibility; the rocklet reads the pty in large chunks whatever this says.
    max_read_size: int = 2000


class CreateBashSessionResponse(WireModel):
    """Output of the startup files (empty when they print nothing)."""

    output: str = ""
    session_type: Literal["bash"] = "bash"


CreateSessionRequest = Annotated[Union[CreateBashSessionRequest], Field(discriminator="session_type")]  # noqa: UP007
CreateSessionResponse = Annotated[Union[CreateBashSessionResponse], Field(discriminator="session_type")]  # noqa: UP007


class BashAction(SandboxRequest):
    """`POST /run_in_session` with `action_type="bash"`: run one command (any number of lines) in a session.

    `timeout=None` waits for ever; on timeout the command is interrupted and `CommandTimeoutError` raised.
    `check`: `"raise"` raises `NonZeroExitCodeError` on a non-zero exit, `"silent"` and `"ignore"` return it
    (`"ignore"` as upstream may leave `exit_code` unset; ours reports it anyway since it costs nothing).
    `expect`: regular expressions that end the wait like the prompt does (for interactive programs).
    """

    action_type: Literal["bash"] = "bash"
    command: str
    session: str = "default"
    timeout: float | None = None
    is_interactive_command: bool = False
    is_interactive_quit: bool = False
    check: Literal["silent", "raise", "ignore"] = "raise"
    error_msg: str = ""
    expect: list[str] = Field(default_factory=list)


class BashInterruptAction(SandboxRequest):
    """`POST /run_in_session` with `action_type="bash_interrupt"`: Ctrl-C up to `n_retry` times, waiting
    `timeout` seconds each, then kill the foreground process group (SIGTERM, then SIGKILL)."""

    action_type: Literal["bash_interrupt"] = "bash_interrupt"
    session: str = "default"
    timeout: float = 0.2
    n_retry: int = 3
    expect: list[str] = Field(default_factory=list)


Action = Annotated[Union[BashAction, BashInterruptAction], Field(discriminator="action_type")]  # noqa: UP007


class BashObservation(WireModel):
    """What a command produced: its output (ANSI stripped, `\\r\\n` → `\\n`) and exit code in one reply.

    `expect_string` is the `expect` pattern that matched (empty when the prompt came back).
    `failure_reason` is set when something went wrong but no exception was raised (e.g. output truncated).
    """

    session_type: Literal["bash"] = "bash"
    output: str = ""
    exit_code: int | None = None
    failure_reason: str = ""
    expect_string: str = ""


Observation = BashObservation


class CloseBashSessionRequest(SandboxRequest):
    """`POST /close_session`."""

    session_type: Literal["bash"] = "bash"
    session: str = "default"


class CloseBashSessionResponse(WireModel):
    session_type: Literal["bash"] = "bash"


CloseSessionRequest = Annotated[Union[CloseBashSessionRequest], Field(discriminator="session_type")]  # noqa: UP007
CloseSessionResponse = Annotated[Union[CloseBashSessionResponse], Field(discriminator="session_type")]  # noqa: UP007
