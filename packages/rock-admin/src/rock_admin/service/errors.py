"""Errors the sandbox service raises (defined with the rest in rock_admin.errors)."""

from rock_admin.errors import RockletTimeoutError, SandboxNotFoundError, SandboxNotRunningError, ServiceError

__all__ = ["RockletTimeoutError", "SandboxNotFoundError", "SandboxNotRunningError", "ServiceError"]
