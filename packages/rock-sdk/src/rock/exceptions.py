"""rock-sdk's errors. `RockError` is the base of all of them: the ones that cross the wire (`RockletException`
and below: the rocklet raises them, a client gets the same class back) and the client's own
(`rock.sdk.sandbox.client.SandboxError` and below, `PortForwardError`, `RockEnvError`).

The wire hierarchy mirrors SWE-ReX's (`SwerexException` → ...), so code that catches `ValueError`,
`TimeoutError` or `RuntimeError` around a runtime call keeps working.
"""

from __future__ import annotations

from typing import Any


class RockError(Exception):
    """Base of every error rock-sdk raises: `except RockError` catches a failed command and an admin that
    cannot be reached alike."""


class RockletException(RockError):
    """Base of every rocklet error. `extra_info` carries structured details (also over the wire)."""

    def __init__(self, *args: Any, extra_info: dict[str, Any] | None = None) -> None:
        super().__init__(*args)
        self.extra_info: dict[str, Any] = dict(extra_info or {})


#: SWE-ReX's name for the base class.
SwerexException = RockletException


class SessionNotInitializedError(RockletException, RuntimeError):
    """The session's shell is not running (it exited or was never started)."""


class NonZeroExitCodeError(RockletException, RuntimeError):
    """`check="raise"` (or `Command.check`) and the command exited non-zero."""


class BashIncorrectSyntaxError(RockletException, RuntimeError):
    """The command does not parse; `extra_info` has `bash_stdout` and `bash_stderr` of `bash -n`."""


class CommandTimeoutError(RockletException, RuntimeError, TimeoutError):
    """The command ran past its `timeout`; it was interrupted. `extra_info["output"]` has what it printed."""


class NoExitCodeError(RockletException, RuntimeError):
    """The exit code could not be determined."""


class SessionExistsError(RockletException, ValueError):
    """`create_session` with a name already in use."""


class SessionDoesNotExistError(RockletException, ValueError):
    """A session name that is not open."""


class SessionBusyError(RockletException, RuntimeError):
    """The session is still running an earlier command: wait for it, interrupt it, or use another session."""


class ProcessDoesNotExistError(RockletException, ValueError):
    """A background process id the rocklet does not know."""


class ProcessExistsError(RockletException, ValueError):
    """`start_process` with a `process_id` already in use."""


class EnvDoesNotExistError(RockletException, ValueError):
    """A GEM env instance id the rocklet does not host."""


class UnsafeArchiveError(RockletException, ValueError):
    """An uploaded archive has a member that would land outside the target (`..`, absolute path, link)."""


class OutputLimitExceededError(RockletException, RuntimeError):
    """A response would exceed the rocklet's configured size limit."""


class FeatureNotAvailableError(RockletException, RuntimeError):
    """The feature needs something this rocklet lacks (e.g. the `rocklet[gem]` extra)."""


class RemoteException(RockletException):
    """A remote error whose class could not be rebuilt here; `class_path` names the original."""

    def __init__(self, *args: Any, class_path: str = "", extra_info: dict[str, Any] | None = None) -> None:
        super().__init__(*args, extra_info=extra_info)
        self.class_path = class_path


class AuthenticationError(RockletException, PermissionError):
    """The rocklet rejected the API key (HTTP 401)."""


class InvalidRequestError(RockletException, ValueError):
    """The rocklet rejected the request body (HTTP 4xx); `extra_info["detail"]` says which field and why."""


__all__ = [
    "AuthenticationError",
    "BashIncorrectSyntaxError",
    "CommandTimeoutError",
    "EnvDoesNotExistError",
    "FeatureNotAvailableError",
    "InvalidRequestError",
    "NoExitCodeError",
    "NonZeroExitCodeError",
    "OutputLimitExceededError",
    "ProcessDoesNotExistError",
    "ProcessExistsError",
    "RemoteException",
    "RockletException",
    "SessionBusyError",
    "SessionDoesNotExistError",
    "SessionExistsError",
    "SessionNotInitializedError",
    "SwerexException",
    "UnsafeArchiveError",
]
