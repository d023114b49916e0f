"""Lifecycle (state machine, idle auto-stop, startup timeout, failure surfacing), the data plane every role
shares, the read role's store-backed source of sandboxes, the read node's hop to the write node, and GEM hosting."""

from rock_admin.service.dataplane import DataPlane, SandboxSource
from rock_admin.service.lifecycle import (
    SandboxNotFoundError,
    SandboxNotRunningError,
    SandboxService,
    ServiceError,
)
from rock_admin.service.store_source import StoreSource

__all__ = [
    "DataPlane",
    "SandboxNotFoundError",
    "SandboxNotRunningError",
    "SandboxService",
    "SandboxSource",
    "ServiceError",
    "StoreSource",
]
