"""Which roll backends run on Ascend, and the settings they need there (applied here, not by the user)."""

from __future__ import annotations

import importlib.util
from typing import Any

UNSUPPORTED = {
    "megatron_train": "use deepspeed_train",
    "megatron_infer": "use hf_infer or vllm (with vllm-ascend)",
    "sglang": "use vllm (with vllm-ascend) or hf_infer",
}
# vllm-ascend does not support prefix caching together with roll's weight sync; upstream's quick start turns it off
VLLM_FORCED = {"enable_prefix_caching": False}
DTYPE_ALIASES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def check_role(
    role_name: str, role: Any, dtypes: tuple[str, ...], check_environment: bool = True
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    strategy = role.strategy_args.strategy_name
    key = f"{role_name}.strategy_args.strategy_name"
    if strategy in UNSUPPORTED:
        problems.append((key, f"{strategy!r} is not supported on Ascend here; {UNSUPPORTED[strategy]}"))
    elif strategy == "vllm":
        if check_environment and importlib.util.find_spec("vllm_ascend") is None:
            problems.append(
                (key, "'vllm' on Ascend needs vllm-ascend (`pip install vllm-ascend`); or use hf_infer")
            )
        role.strategy_args.strategy_config = {**(role.strategy_args.strategy_config or {}), **VLLM_FORCED}
    dtype = DTYPE_ALIASES.get(role.model_args.dtype, role.model_args.dtype)
    if dtype in ("fp32", "bf16", "fp16") and dtype not in dtypes:
        problems.append(
            (
                f"{role_name}.model_args.dtype",
                f"{dtype} is not supported by this Ascend chip; use fp16 or fp32",
            )
        )
    return problems
