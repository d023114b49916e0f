"""Errors raised by gem_envs. All are ValueError/RuntimeError subclasses so callers of GEM keep working."""

from __future__ import annotations


class UnknownEnvError(ValueError):
    """`make` was asked for an id nobody registered."""


class EnvKwargError(TypeError):
    """`make` got a keyword the environment does not accept, or a value it cannot use."""


class EnvConfigError(ValueError):
    """An environment parameter has a value the environment cannot use (names the field)."""


class ResetNeeded(RuntimeError):
    """`step` was called before `reset`, or after the episode ended."""
