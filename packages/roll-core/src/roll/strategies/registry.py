"""Strategy names → implementations. Unbuilt backends are recognised and fail with what to install."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from roll.errors import StrategyUnavailable


@dataclass(frozen=True)
class StrategySpec:
    name: str
    kind: str  # "infer" | "train"
    target: str | None  # "module:Class", or None when not implemented in this release
    extra: str | None = None  # roll-core extra that brings the backend's packages
    note: str = ""
    critic_target: str | None = None  # the value-model variant a train strategy offers the `critic` role
    requires: str | None = None  # the module the backend imports (missing → "install roll-core[<extra>]")
    collective_state_dict: bool = False  # every rank joins state_dict() (ZeRO-3 gathers); rank 0 returns it
    concurrent_calls: bool = (
        False  # serves overlapping calls itself (an engine loop): Ray workers take them at once
    )


_SPECS: dict[str, StrategySpec] = {}


def register_strategy(spec: StrategySpec) -> None:
    _SPECS[spec.name] = spec


for _spec in (
    StrategySpec("hf_infer", "infer", "roll.strategies.hf:HfInferStrategy"),
    StrategySpec(
        "hf_train",
        "train",
        "roll.strategies.hf:HfTrainStrategy",
        critic_target="roll.strategies.hf:HfCriticStrategy",
    ),
    StrategySpec(
        "deepspeed_train",
        "train",
        "roll.strategies.deepspeed_strategy:DeepSpeedTrainStrategy",
        "deepspeed",
        "ZeRO 0/1/2/3 training",
        critic_target="roll.strategies.deepspeed_strategy:DeepSpeedCriticStrategy",
        requires="deepspeed",
        collective_state_dict=True,
    ),
    StrategySpec("deepspeed_infer", "infer", None, "deepspeed", "DeepSpeed inference"),
    StrategySpec(
        "megatron_train",
        "train",
        "roll.strategies.megatron_strategy:MegatronTrainStrategy",
        "megatron",
        "Megatron-Core training (needs CUDA)",
        requires="megatron",  # megatron-core's top package (find_spec of a dotted name imports its parent)
        collective_state_dict=True,  # TP ranks all-gather their shards
    ),
    StrategySpec("megatron_infer", "infer", None, "megatron", "Megatron-Core inference (needs CUDA)"),
    StrategySpec(
        "vllm",
        "infer",
        "roll.strategies.vllm_strategy:VllmStrategy",
        "vllm",
        "vLLM generation",
        requires="vllm",
        concurrent_calls=True,  # every env manager's requests join one running batch
    ),
    StrategySpec("sglang", "infer", None, "sglang", "SGLang generation (needs CUDA)"),
    StrategySpec("fsdp2_train", "train", None, None, "FSDP2 training"),
    StrategySpec("fsdp2_infer", "infer", None, None, "FSDP2 inference"),
):
    register_strategy(_spec)


def known_strategies() -> list[str]:
    return sorted(_SPECS)


def strategy_spec(name: str) -> StrategySpec:
    if name not in _SPECS:
        import difflib

        close = difflib.get_close_matches(name, _SPECS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown strategy_name {name!r}.{hint} Known: {', '.join(known_strategies())}")
    return _SPECS[name]


def unavailable_reason(name: str) -> str | None:
    """Why `name` cannot run here (a message naming what to install/change), or None when it can."""
    spec = strategy_spec(name)
    if spec.target is not None:
        if spec.requires and importlib.util.find_spec(spec.requires) is None:
            return (
                f"strategy {name!r} ({spec.note}) needs the {spec.requires!r} package: "
                f"`pip install roll-core[{spec.extra}]`"
            )
        return None
    if spec.extra is None:
        return (
            f"strategy {name!r} ({spec.note}) is recognised but not implemented in roll-core "
            f"{_version()}; use hf_train / hf_infer"
        )
    return (
        f"strategy {name!r} ({spec.note}) is recognised but its backend is not part of roll-core {_version()} "
        f"yet: it will need `pip install roll-core[{spec.extra}]` and the backends release; "
        "use hf_train / hf_infer on this build"
    )


def load_strategy_class(name: str, critic: bool = False) -> type:
    """The strategy class of `name` (its value-model variant when `critic`)."""
    reason = unavailable_reason(name)
    if reason:
        raise StrategyUnavailable(reason)
    spec = strategy_spec(name)
    target = spec.critic_target if critic else spec.target
    if target is None:
        raise StrategyUnavailable(f"strategy {name!r} has no critic (value model) variant; use hf_train")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _version() -> str:
    from roll import __version__

    return __version__
