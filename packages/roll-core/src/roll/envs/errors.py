"""Errors of the ROCK-backed env adapters (defined with the rest in roll.errors)."""

from roll.errors import EnvUnavailableError, SandboxEnvError

__all__ = ["EnvUnavailableError", "SandboxEnvError"]
