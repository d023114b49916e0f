"""Runtimes: one small interface (`base.Runtime`) and the embedded `process` runtime."""

from rock_admin.runtimes.base import Handle, Runtime, SandboxSpec, SandboxStartError, create_runtime

__all__ = ["Handle", "Runtime", "SandboxSpec", "SandboxStartError", "create_runtime"]
