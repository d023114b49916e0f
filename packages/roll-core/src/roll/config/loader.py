"""YAML loading: `defaults:` composition, command-line overrides, `${...}` interpolation, typed checking.

Composition follows Hydra's rules for the forms ROLL's examples use:
`- ../config/traj_envs@_here_` (merge at the root), `- path@pkg` (merge under `pkg`), `- group: option`
(file `group/option.yaml` under `group`), `- _self_` (where the file itself goes; last when absent).
Paths are relative to the including file's folder. Hydra's compose is not used (every hydra-core release
requires omegaconf < 2.4; roll-core runs on 2.4), so OmegaConf reads, merges and resolves.
Overrides (`a.b=1`, `+new=2`, `~a.b`) apply after composition and before interpolation, so they flow
into every `${...}` that refers to them; values are read as OmegaConf reads a dotlist (YAML, `1e-3` a
number). pydantic checks the result against the schema dataclasses: every unknown key (with a
did-you-mean) and every wrong type, all at once.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import operator
import types
import typing
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import TypeAdapter, ValidationError
from yaml import YAMLError

from roll.config.hints import did_you_mean
from roll.config.schema import AgenticConfig
from roll.errors import ConfigError

_WHERE_MERGED = ("", "_here_", "_global_")  # packages that merge at the including file's root


def _read_yaml(path: Path) -> DictConfig:
    try:
        data = OmegaConf.load(path)
    except (YAMLError, OmegaConfBaseException) as exc:
        raise ConfigError([("", f"{path}: not valid YAML: {exc}")]) from None
    if not isinstance(data, DictConfig):
        raise ConfigError([("", f"{path}: the top level must be a mapping, got a list")])
    return data


def _resolve_file(base_dir: Path, ref: str) -> Path:
    candidate = (base_dir / ref).resolve()
    if candidate.suffix != ".yaml" and not candidate.is_file():
        candidate = candidate.with_name(candidate.name + ".yaml")
    if not candidate.is_file():
        raise ConfigError([("defaults", f"included config {ref!r} not found (looked for {candidate})")])
    return candidate


def _default_entry(path: Path, entry: Any) -> tuple[str | None, str]:
    """(file reference, package) of one `defaults:` entry; (None, _) for a group set to null."""
    if isinstance(entry, str):
        if entry.startswith(("override ", "optional ")):
            raise ConfigError(
                [("defaults", f"{entry!r}: Hydra's override/optional default entries are not supported")]
            )
        ref, _, package = entry.partition("@")
        return ref, package
    if isinstance(entry, DictConfig) and len(entry) == 1:
        group, option = next(iter(entry.items()))
        group_name, _, package = str(group).partition("@")
        return (None if option is None else f"{group_name}/{option}"), package or Path(group_name).name
    raise ConfigError([("defaults", f"{path}: unsupported defaults entry {entry!r}")])


def compose(path: Path, _stack: tuple[Path, ...] = ()) -> DictConfig:
    """The file at `path` with its `defaults:` list merged in, interpolations still unresolved."""
    path = path.resolve()
    if path in _stack:
        chain = " -> ".join(str(p) for p in (*_stack, path))
        raise ConfigError([("defaults", f"circular include: {chain}")])
    own = _read_yaml(path)
    defaults = own.pop("defaults", None) or []
    if not isinstance(defaults, (list, ListConfig)):
        raise ConfigError([("defaults", f"{path}: `defaults` must be a list, got {type(defaults).__name__}")])
    parts: list[DictConfig] = []
    for entry in defaults:
        if entry == "_self_":
            parts.append(own)
            continue
        ref, package = _default_entry(path, entry)
        if ref is None:
            continue
        included = compose(_resolve_file(path.parent, ref), (*_stack, path))
        if package not in _WHERE_MERGED:
            nested = OmegaConf.create()
            OmegaConf.update(nested, package, included, merge=False, force_add=True)
            included = nested
        parts.append(included)
    if "_self_" not in defaults:
        parts.append(own)
    return OmegaConf.merge(*parts) if parts else OmegaConf.create({})


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> list[tuple[str, str]]:
    """Apply command-line overrides in place; returns problems (keys to delete that are not there)."""
    problems: list[tuple[str, str]] = []
    for text in overrides:
        key, sep, value = text.lstrip("+~").partition("=")
        key = key.strip()
        if text.startswith("~"):
            parent_key, _, leaf = key.rpartition(".")
            parent = (
                OmegaConf.select(cfg, parent_key, throw_on_resolution_failure=False) if parent_key else cfg
            )
            if not isinstance(parent, DictConfig) or leaf not in parent:
                problems.append((key, f"override ~{key}: no such key to delete"))
            else:
                del parent[leaf]
            continue
        if not sep:
            raise ConfigError([("", f"override {text!r} is not of the form key=value")])
        if not key:
            raise ConfigError([("", f"override {text!r} has an empty key")])
        try:
            parsed = OmegaConf.to_container(OmegaConf.from_dotlist([f"value={value}"]))["value"]
        except YAMLError:  # not YAML (`a: b: c`): the text as written
            parsed = value
        OmegaConf.update(
            cfg, key, "" if parsed is None and not value.strip() else parsed, merge=False, force_add=True
        )
    return problems


@functools.cache
def _schema() -> TypeAdapter:
    return TypeAdapter(AgenticConfig)


_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "bool": "true/false",
    "string": "a string",
    "list": "a list",
    "dict": "a mapping",
    "dataclass": "a mapping",
}


def check_types(data: dict) -> tuple[AgenticConfig | None, list[tuple[str, str]]]:
    """`data` as an AgenticConfig, or None and (path, message) for every unknown key and wrong type."""
    try:
        return _schema().validate_python(data), []
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    empty = [e["loc"] for e in errors if e["type"] == "dataclass_type" and e["input"] is None]
    if empty:  # a section left empty (`model_args:`) takes its defaults
        data = copy.deepcopy(data)
        for loc in empty:
            functools.reduce(operator.getitem, loc[:-1], data)[loc[-1]] = {}
        return check_types(data)
    return None, sorted(_problem(error) for error in errors)


def _problem(error: dict) -> tuple[str, str]:
    loc = error["loc"]
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    kind = error["type"]
    if kind == "unexpected_keyword_argument":
        return path, f"unknown key{did_you_mean(loc[-1], _keys_at(loc[:-1]))}"
    value = error["input"]
    what = _EXPECTED.get(kind.split("_")[0])
    if what is None:
        return path, error["msg"]
    return path, f"expected {what}, got {type(value).__name__} {value!r}"


def _keys_at(loc: tuple) -> list[str]:
    """The field names of the schema section at `loc` (a path of field names, dict keys, list indexes)."""
    tp: Any = AgenticConfig
    for part in loc:
        tp = typing.get_type_hints(tp)[part] if dataclasses.is_dataclass(tp) else typing.get_args(tp)[-1]
        if typing.get_origin(tp) in (typing.Union, types.UnionType):  # X | None
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return [f.name for f in dataclasses.fields(tp)]


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
    config, type_problems = check_types(resolved)
    problems += type_problems
    if problems:
        raise ConfigError(problems, source=str(file))
    return config, resolved
