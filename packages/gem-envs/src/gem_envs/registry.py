"""The env registry: `register`, `make`, `list_envs`. Ids follow GEM (`game:Sokoban-v0-easy`)."""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gem_envs.core import Env
from gem_envs.errors import EnvKwargError, UnknownEnvError

EntryPoint = Callable[..., Env] | str


@dataclass(frozen=True)
class EnvSpec:
    """A registered id: what to build (a callable or "module:Attr") and the preset kwargs."""

    id: str
    entry_point: EntryPoint
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def load(self) -> Callable[..., Env]:
        if callable(self.entry_point):
            return self.entry_point
        module_name, _, attr = self.entry_point.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ImportError(f"{self.id}: cannot load entry point {self.entry_point!r}: {exc}") from exc


_REGISTRY: dict[str, EnvSpec] = {}


def register(env_id: str, entry_point: EntryPoint, description: str = "", **kwargs: Any) -> EnvSpec:
    """Register `env_id`; `kwargs` are the preset, which `make(env_id, **overrides)` may override."""
    if env_id in _REGISTRY:
        raise ValueError(
            f"env id {env_id!r} is already registered (entry point {_REGISTRY[env_id].entry_point!r})"
        )
    if not isinstance(env_id, str) or not env_id.strip():
        raise ValueError(f"env id must be a non-empty string, got {env_id!r}")
    spec = EnvSpec(env_id, entry_point, dict(kwargs), description)
    _REGISTRY[env_id] = spec
    return spec


def spec(env_id: str) -> EnvSpec:
    """The spec for `env_id`; an unknown id raises UnknownEnvError listing close matches and all ids."""
    try:
        return _REGISTRY[env_id]
    except KeyError:
        close = difflib.get_close_matches(str(env_id), _REGISTRY, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownEnvError(
            f"unknown env id {env_id!r}.{hint} Registered ids: {', '.join(list_envs())}"
        ) from None


def list_envs(prefix: str = "") -> list[str]:
    """Sorted registered ids, optionally only those starting with `prefix` (e.g. "game:")."""
    return sorted(i for i in _REGISTRY if i.startswith(prefix))


def make(env_id: str, **kwargs: Any) -> Env:
    """Build a fresh, not yet reset env. Call kwargs override the preset; unknown kwargs are an error."""
    env_spec = spec(env_id)
    factory = env_spec.load()
    merged = {**env_spec.kwargs, **kwargs}
    _check_kwargs(env_id, factory, merged)
    env = factory(**merged)
    env.env_id = env_id
    env.entry_point = env_spec.entry_point if isinstance(env_spec.entry_point, str) else repr(factory)
    return env


def _check_kwargs(env_id: str, factory: Callable[..., Env], kwargs: dict[str, Any]) -> None:
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise EnvKwargError(
            f"{env_id}: unknown keyword argument(s) {', '.join(map(repr, unknown))}; "
            f"valid keywords: {', '.join(accepted)}"
        )
