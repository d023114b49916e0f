"""Runtimes: one small interface (`base.Runtime`) and the embedded `process` runtime."""

from rock_admin.runtimes.base import Endpoint, Handle, Runtime, SandboxSpec, SandboxStartError, create_runtime

__all__ = ["Endpoint", "Handle", "Runtime", "SandboxSpec", "SandboxStartError", "create_runtime"]
