"""Runtimes: one small interface (`base.Runtime`), the embedded `process` runtime and `docker`, chosen by name
(`registry`)."""

from rock_admin.errors import LaunchError
from rock_admin.runtimes.base import Endpoint, Handle, Runtime, SandboxSpec
from rock_admin.runtimes.registry import create_runtime

__all__ = ["Endpoint", "Handle", "LaunchError", "Runtime", "SandboxSpec", "create_runtime"]
