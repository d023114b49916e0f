"""roll-core's errors, in one place. Each is a `RollError` (catch that for any of them) and also the builtin
kind it resembles, so `except ValueError` around config loading keeps working."""

from __future__ import annotations


class RollError(Exception):
    """Base of every error roll-core raises on purpose."""


# --- configuration: found before any worker starts
class ConfigError(RollError, ValueError):
    """One or more configuration problems; `problems` holds (path, message) pairs, all reported at once."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "") -> None:
        self.problems = problems
        head = f"invalid configuration{f' {source}' if source else ''}: {len(problems)} problem(s)"
        lines = [head] + [f"  - {path or '<root>'}: {msg}" for path, msg in problems]
        super().__init__("\n".join(lines))


class DeviceMappingError(RollError, ValueError):
    """A device_mapping value that is not a list of device ids in the accepted grammar."""


class PlatformUnavailable(RollError, RuntimeError):
    """The configured platform exists but cannot run on this machine; the message says why in one line."""


class StrategyUnavailable(RollError, RuntimeError):
    """A recognised strategy name whose backend this build or machine cannot run."""


# --- envs: split by what the env manager should do about them
class SandboxEnvError(RollError, RuntimeError):
    """The env's sandbox or game server failed (died, answered garbage): this env object is unusable, and
    the env manager replaces it with a fresh one (`env/<tag>/sandbox_replaced`)."""


class EnvUnavailableError(RollError, RuntimeError):
    """The service behind an env stayed unreachable for the env's whole retry window: retrying the episode
    cannot help, so the rollout fails with this error (it names the URL and the config key)."""


class GameServerClosed(RollError, ConnectionError):
    """A sandbox-served game server closed its end (it exited, or the rocklet could not reach it)."""


# --- rollouts
class EnvChurnError(RollError, RuntimeError):
    """A batch replaced more envs than its budget, or its groups kept failing: the message names why."""
