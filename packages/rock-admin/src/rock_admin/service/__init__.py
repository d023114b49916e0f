"""Lifecycle (state machine, idle auto-stop, startup timeout, failure surfacing) and GEM hosting."""

from rock_admin.service.lifecycle import (
    SandboxError,
    SandboxNotFoundError,
    SandboxNotRunningError,
    SandboxService,
)

__all__ = ["SandboxError", "SandboxNotFoundError", "SandboxNotRunningError", "SandboxService"]
