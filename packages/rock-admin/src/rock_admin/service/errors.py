"""Errors the sandbox service raises; the API maps them to ROCK's envelope (or GEM's `{"detail"}`)."""

from __future__ import annotations


class SandboxError(Exception):
    """A request the lifecycle refuses; `code` is upstream's (4000 bad request, 5000 internal)."""

    def __init__(self, message: str, code: int = 4000) -> None:
        super().__init__(message)
        self.code = code


class SandboxNotFoundError(SandboxError):
    pass


class SandboxNotRunningError(SandboxError):
    pass


class RockletTimeoutError(SandboxError):
    """The sandbox's rocklet did not answer within the admin's deadline for the call."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 5000)
