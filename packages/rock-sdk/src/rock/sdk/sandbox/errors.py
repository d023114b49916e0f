"""The sandbox client's errors (all `rock.exceptions.RockError`s, like the wire exceptions a call may raise)."""

from __future__ import annotations

from rock.exceptions import RockError


class SandboxError(RockError):
    """Base of the client's errors; `sandbox_id` names the sandbox (None before it has one)."""

    def __init__(self, message: str, *, sandbox_id: str | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.sandbox_id = sandbox_id
        self.code = code


class SandboxRequestError(SandboxError):
    """The admin answered `Failed` (bad input, unknown or stopped sandbox, ...)."""


class SandboxUnreachableError(SandboxError, ConnectionError):
    """The admin could not be reached, or dropped the connection, after the client's retries: the call may
    succeed later (the sandbox itself may be fine)."""


class SandboxStartError(SandboxError):
    """The sandbox did not start: its phase failed or timed out, or `startup_timeout` passed."""
