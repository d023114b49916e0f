"""Errors of the ROCK-backed env adapters, split by what the env manager should do about them."""

from __future__ import annotations


class SandboxEnvError(RuntimeError):
    """The env's sandbox or game server failed (died, answered garbage): this env object is unusable, and
    the env manager replaces it with a fresh one (`env/<tag>/sandbox_replaced`)."""


class EnvUnavailableError(RuntimeError):
    """The service behind an env stayed unreachable for the env's whole retry window: retrying the episode
    cannot help, so the rollout fails with this error (it names the URL and the config key)."""
