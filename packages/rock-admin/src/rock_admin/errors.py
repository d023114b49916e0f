"""rock-admin's errors, in one place. Each is an `AdminError` and also the builtin kind it resembles; the API
layer turns them into ROCK's envelope (or GEM's `{"detail"}`), never a 500."""

from __future__ import annotations


class AdminError(Exception):
    """Base of every error the admin raises on purpose."""


class AdminConfigError(AdminError, ValueError):
    """A bad setting; the message names it."""


class ServiceError(AdminError):
    """A request the lifecycle refuses; `code` is upstream's (4000 bad request, 5000 internal)."""

    def __init__(self, message: str, code: int = 4000) -> None:
        super().__init__(message)
        self.code = code


class SandboxNotFoundError(ServiceError):
    """No sandbox of this id (or not the caller's: tenants see only their own)."""


class SandboxNotRunningError(ServiceError):
    """The sandbox exists but is not running."""


class RockletTimeoutError(ServiceError):
    """The sandbox's rocklet did not answer within the admin's deadline for the call."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 5000)


class LaunchError(AdminError, RuntimeError):
    """A runtime could not start the sandbox; the message says why."""


class UnknownImageError(AdminError, LookupError):
    """The image is not in the store; the message lists those that are."""


class PodmanError(AdminError, RuntimeError):
    """Podman is missing, or one of its commands failed; the message has its output."""
