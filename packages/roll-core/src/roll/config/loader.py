"""YAML loading: `defaults:` composition, command-line overrides, `${...}` interpolation, strict typing.

Composition follows Hydra's rules for the forms ROLL's examples use:
`- ../config/traj_envs@_here_` (merge at the root), `- path@pkg` (merge under `pkg`), `- group: option`
(file `group/option.yaml` under `group`), `- _self_` (where the file itself goes; last when absent).
Paths are relative to the including file's folder. Overrides (`a.b=1`, `+new=2`, `~a.b`) apply after
composition and before interpolation, so they flow into every `${...}` that refers to them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from roll.config.hints import did_you_mean
from roll.config.schema import AgenticConfig
from roll.errors import ConfigError


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError([("", f"{path}: not valid YAML: {exc}")]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([("", f"{path}: the top level must be a mapping, got {type(data).__name__}")])
    return data


def _resolve_file(base_dir: Path, ref: str) -> Path:
    candidate = (base_dir / ref).resolve()
    if candidate.suffix != ".yaml" and not candidate.is_file():
        candidate = candidate.with_name(candidate.name + ".yaml")
    if not candidate.is_file():
        raise ConfigError([("defaults", f"included config {ref!r} not found (looked for {candidate})")])
    return candidate


def _nest(package: str, content: dict) -> dict:
    for part in reversed(package.split(".")):
        content = {part: content}
    return content


def compose(path: Path, _stack: tuple[Path, ...] = ()) -> DictConfig:
    """The file at `path` with its `defaults:` list merged in, interpolations still unresolved."""
    path = path.resolve()
    if path in _stack:
        chain = " -> ".join(str(p) for p in (*_stack, path))
        raise ConfigError([("defaults", f"circular include: {chain}")])
    data = _read_yaml(path)
    defaults = data.pop("defaults", None) or []
    if not isinstance(defaults, list):
        raise ConfigError([("defaults", f"{path}: `defaults` must be a list, got {type(defaults).__name__}")])
    parts: list[DictConfig] = []
    self_cfg = OmegaConf.create(data)
    self_seen = False
    for entry in defaults:
        if entry == "_self_":
            parts.append(self_cfg)
            self_seen = True
            continue
        if isinstance(entry, str):
            if entry.startswith(("override ", "optional ")):
                raise ConfigError(
                    [("defaults", f"{entry!r}: Hydra's override/optional default entries are not supported")]
                )
            ref, _, package = entry.partition("@")
            included = compose(_resolve_file(path.parent, ref), (*_stack, path))
            if package and package not in ("_here_", "_global_"):
                included = OmegaConf.create(_nest(package, OmegaConf.to_container(included, resolve=False)))
            parts.append(included)
        elif isinstance(entry, dict) and len(entry) == 1:
            group, option = next(iter(entry.items()))
            if option is None:
                continue
            group_name, _, package = str(group).partition("@")
            included = compose(_resolve_file(path.parent, f"{group_name}/{option}"), (*_stack, path))
            target = package if package and package not in ("_here_", "_global_") else Path(group_name).name
            if package in ("_here_", "_global_"):
                parts.append(included)
            else:
                parts.append(OmegaConf.create(_nest(target, OmegaConf.to_container(included, resolve=False))))
        else:
            raise ConfigError([("defaults", f"{path}: unsupported defaults entry {entry!r}")])
    if not self_seen:
        parts.append(self_cfg)
    return OmegaConf.merge(*parts) if parts else OmegaConf.create({})


def _parse_override(text: str) -> tuple[str, str, Any]:
    """`a.b=1` → ("set", "a.b", 1); `+a=1` → ("add", ...); `~a.b` → ("del", "a.b", None)."""
    if text.startswith("~"):
        return "del", text[1:].split("=", 1)[0], None
    if "=" not in text:
        raise ConfigError([("", f"override {text!r} is not of the form key=value")])
    key, value = text.split("=", 1)
    op = "add" if key.startswith("+") else "set"
    key = key.lstrip("+").strip()
    if not key:
        raise ConfigError([("", f"override {text!r} has an empty key")])
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    if isinstance(parsed, str):  # YAML 1.1 reads "1e-3" as a string; a number is meant
        with contextlib.suppress(ValueError):
            parsed = float(parsed) if any(c in parsed for c in ".eE") else int(parsed)
    return op, key, parsed


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> list[tuple[str, str]]:
    """Apply command-line overrides in place; returns problems (unknown keys without '+', ...)."""
    problems: list[tuple[str, str]] = []
    for text in overrides:
        op, key, value = _parse_override(text)
        exists = (
            OmegaConf.select(cfg, key, default=_MISSING, throw_on_resolution_failure=False) is not _MISSING
        )
        if op == "del":
            parent_key, _, leaf = key.rpartition(".")
            parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
            if not exists or not isinstance(parent, DictConfig):
                problems.append((key, f"override ~{key}: no such key to delete"))
                continue
            del parent[leaf]
            continue
        if op == "set" and not exists and not _schema_knows(key):
            problems.append(
                (key, f"override {text!r}: unknown key{_did_you_mean_path(key)}; use +{key}=... to add")
            )
            continue
        OmegaConf.update(cfg, key, value, merge=False, force_add=True)
    return problems


_MISSING = object()


def _schema_knows(dotted: str) -> bool:
    """True when a dotted path names a field of the schema (so `key=value` may create it)."""
    cls: Any = AgenticConfig
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(cls):
            return cls is dict or typing.get_origin(cls) is dict
        hints = typing.get_type_hints(cls)
        if part not in hints:
            return False
        cls = _unwrap_optional(hints[part])
    return True


def _did_you_mean_path(dotted: str) -> str:
    cls: Any = AgenticConfig
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(cls):
            return ""
        hints = typing.get_type_hints(cls)
        if part not in hints:
            close = difflib.get_close_matches(part, hints, n=1, cutoff=0.6)
            return f" (did you mean {close[0]!r}?)" if close else ""
        cls = _unwrap_optional(hints[part])
    return ""


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _check_type(value: Any, tp: Any, path: str, problems: list[tuple[str, str]]) -> Any:
    """`value` converted to `tp` (dataclasses built recursively); problems appended, never raised."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _check_type(value, non_none[0], path, problems)
        for arg in non_none:
            trial: list[tuple[str, str]] = []
            out = _check_type(value, arg, path, trial)
            if not trial:
                return out
        problems.append((path, f"expected {tp}, got {value!r}"))
        return value
    if dataclasses.is_dataclass(tp):
        if value is None:
            return tp()
        if not isinstance(value, dict):
            problems.append(
                (path, f"expected a mapping ({tp.__name__}), got {type(value).__name__} {value!r}")
            )
            return tp()
        return build_dataclass(tp, value, path, problems)
    if origin is list or tp is list:
        if not isinstance(value, (list, tuple)):
            problems.append((path, f"expected a list, got {type(value).__name__} {value!r}"))
            return value
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [_check_type(v, item_tp, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            problems.append((path, f"expected a mapping, got {type(value).__name__} {value!r}"))
            return value
        args = typing.get_args(tp)
        if len(args) == 2:
            return {k: _check_type(v, args[1], f"{path}.{k}", problems) for k, v in value.items()}
        return value
    if tp is bool:
        if not isinstance(value, bool):
            problems.append((path, f"expected true/false, got {value!r}"))
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            problems.append((path, f"expected an integer, got {value!r}"))
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append((path, f"expected a number, got {value!r}"))
            return value
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
            problems.append((path, f"expected a string, got {type(value).__name__} {value!r}"))
        return value
    return value


def build_dataclass(cls: type, data: dict, path: str, problems: list[tuple[str, str]]) -> Any:
    """`cls(**data)` with every unknown key reported (path + did-you-mean) and every value type-checked."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        sub = f"{path}.{key}" if path else str(key)
        if key not in hints:
            problems.append((sub, f"unknown key{did_you_mean(key, hints)}"))
            continue
        kwargs[key] = _check_type(value, hints[key], sub, problems)
    return cls(**kwargs)


def load_config(
    config_path: str | Path, config_name: str, overrides: list[str] | None = None
) -> tuple[AgenticConfig, dict]:
    """Compose, override, resolve and type-check; returns (config, resolved dict). Raises ConfigError."""
    folder = Path(config_path)
    name = config_name if config_name.endswith(".yaml") else f"{config_name}.yaml"
    file = folder / name
    if not file.is_file():
        available = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        close = difflib.get_close_matches(config_name, available, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            [("", f"config {file} not found.{hint} Available in {folder}: {', '.join(available) or '-'}")]
        )
    cfg = compose(file)
    problems = apply_overrides(cfg, overrides or [])
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or ""
        raise ConfigError(
            [*problems, (str(key), f"interpolation failed: {exc.msg if hasattr(exc, 'msg') else exc}")]
        ) from None
    assert isinstance(resolved, dict)
    config = build_dataclass(AgenticConfig, resolved, "", problems)
    if problems:
        raise ConfigError(problems, source=str(file))
    return config, resolved


def config_to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)
