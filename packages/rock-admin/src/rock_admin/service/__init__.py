"""Lifecycle (state machine, idle auto-stop, startup timeout, failure surfacing), the data plane every role
shares (and the read role's store-backed one), the read node's hop to the write node, and GEM hosting."""

from rock_admin.service.dataplane import DataPlane, ReadPlane
from rock_admin.service.lifecycle import (
    SandboxNotFoundError,
    SandboxNotRunningError,
    SandboxService,
    ServiceError,
)

__all__ = [
    "DataPlane",
    "ReadPlane",
    "SandboxNotFoundError",
    "SandboxNotRunningError",
    "SandboxService",
    "ServiceError",
]
