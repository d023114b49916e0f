"""Rules about one key's value, declared next to the field in `roll.config.schema` and run by `validate`.

A rule takes the value and returns the problem's message, or None when the value is fine; `field_problems`
runs the rules of one dataclass's own fields (not nested ones: validate decides which sections apply).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from typing import Any

Rule = Callable[[Any], str | None]


def rule(check: Rule) -> dict:
    """The metadata of a dataclass field whose value must pass `check`."""
    return {"rule": check}


def field_problems(section: Any, path: str) -> list[tuple[str, str]]:
    """(path, message) for every field of `section` whose rule fails."""
    problems = []
    for f in dataclasses.fields(section):
        check = f.metadata.get("rule")
        if check is not None and (msg := check(getattr(section, f.name))) is not None:
            problems.append((f"{path}.{f.name}" if path else f.name, msg))
    return problems


def choice(choices: Collection, message: str) -> Rule:
    """A value from `choices`, else `message` with `{v}` the value's repr."""
    return lambda v: None if v in choices else message.format(v=repr(v))


def one_of(choices: Collection, noun: str) -> Rule:
    return lambda v: None if v in choices else f"unknown {noun} {v!r}; one of {sorted(choices)}"


def above(low: float) -> Rule:
    return lambda v: None if v > low else f"must be > {low}, got {v}"


def at_least(low: int) -> Rule:
    return lambda v: None if v >= low else f"must be >= {low}, got {v}"


def unset(message: str) -> Rule:
    """Keys ROLL has and roll-core does not implement: any non-empty value is the problem."""
    return lambda v: message if v else None


def lr_scheduler(v: str) -> str | None:
    if v in ("constant", "linear", "cosine", "constant_with_warmup"):
        return None
    return f"{v!r} is not supported; use constant, linear or cosine"


def adv_estimator(v: str) -> str | None:
    from roll.algorithms.functionals import advantage_estimators  # torch: only once a config is checked

    if v in ("gigpo", "step_reinforce", "agentic_reinforce"):
        return f"{v!r} is not implemented in roll-core 0.1; use grpo, reinforce or gae"
    if v not in advantage_estimators():
        return f"unknown estimator {v!r}; one of {advantage_estimators()}"
    return None


def grouping(v: str) -> str | None:
    from roll.agentic.advantage_stage import GROUPING_KEYS  # the stage that groups owns the names

    return None if v in GROUPING_KEYS else f"unknown grouping {v!r}; one of {sorted(GROUPING_KEYS)}"


def kl_penalty(v: str) -> str | None:
    if v == "full":
        return "'full' (full-distribution KL) is not implemented in roll-core 0.1; use kl, abs, mse or k3"
    return one_of({"kl", "k1", "abs", "mse", "k3"}, "estimator")(v)


def tracker(v: str) -> str | None:
    if v in ("wandb", "swanlab", "trackio"):
        return f"{v!r} is not built into roll-core 0.1; use tensorboard, stdout or jsonl"
    return one_of({"tensorboard", "stdout", "jsonl"}, "tracker")(v)


def async_ratio(v: float) -> str | None:
    if v < 0 or v != int(v):
        return f"must be a whole number of policy versions >= 0 (0 = synchronous), got {v}"
    return None


def sequence_length(v: int | None) -> str | None:
    if v is None:
        return "missing: set sequence_length (or prompt_length + response_length)"
    return above(0)(v)


def group_filter(v: str | None) -> str | None:
    if not v:
        return None
    from roll.agentic.scheduler import load_group_filter_class

    try:
        load_group_filter_class(v)
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        return (
            f"cannot load {v!r} ({exc}); give a 'module.Class' with filter(group_id, episode_id, group) -> bool, "
            "e.g. roll.agentic.scheduler.ZeroVarianceGroupFilter"
        )
    return None


def llm_proxy(v: dict | None) -> str | None:
    if v and v.get("proxy_type", "policy") != "policy":
        return f"proxy_type {v.get('proxy_type')!r} is not implemented in roll-core 0.1; use policy"
    return None


def port(v: int) -> str | None:
    return None if 0 <= v <= 65535 else f"must be 0 (any free port) to 65535, got {v}"


def admin_url(v: str | None) -> str | None:
    from roll.envs.rock_probe import url_problem

    return None if v is None else url_problem(v)


AGENT_PLACEHOLDERS = {"python", "task_file", "max_turns", "workdir", "rock_agents_dir"}


def agent_command(v: str | None) -> str | None:
    import string

    if v is None:
        return None
    try:
        names = {n for _, n, _, _ in string.Formatter().parse(v) if n is not None}
    except ValueError as exc:
        return f"not a valid template ({exc}); write literal braces as {{{{ }}}}"
    unknown = ", ".join(f"{{{n}}}" for n in sorted(names - AGENT_PLACEHOLDERS))
    return (
        f"unknown placeholder {unknown}; known: {', '.join(sorted(AGENT_PLACEHOLDERS))}" if unknown else None
    )
