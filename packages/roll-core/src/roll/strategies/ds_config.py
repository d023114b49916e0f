"""DeepSpeed configs for `deepspeed_train`: ROLL's `deepspeed_zero*` includes with `auto` filled from our args.

`resolve_ds_config` fills every `auto` the way HF's Trainer does (micro batch, accumulation, clipping,
precision from `model_args.dtype`, bucket sizes from the model's hidden size); `check_ds_config` runs
DeepSpeed's own parser on the result and returns problems as `(key path, message)` before any worker starts.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from roll.config.hints import did_you_mean

# bf16 / fp16 flags by our model_args.dtype
_HALF = {"bf16": "bf16", "bfloat16": "bf16", "fp16": "fp16", "float16": "fp16"}


def zero_stage(ds_config: dict) -> int:
    return int((ds_config.get("zero_optimization") or {}).get("stage", 0))


def offloads(ds_config: dict) -> list[str]:
    """Which ZeRO states go to CPU: a subset of ["optimizer", "param"]."""
    zero = ds_config.get("zero_optimization") or {}
    return [
        kind
        for kind in ("optimizer", "param")
        if (zero.get(f"offload_{kind}") or {}).get("device", "none") not in ("none", None)
    ]


def hidden_size(model_path: str | None) -> int | None:
    """`hidden_size` from the model folder's config.json (bucket sizes scale with it), None when unknown."""
    if not model_path:
        return None
    cfg = Path(model_path) / "config.json"
    if not cfg.is_file():
        return None
    data = json.loads(cfg.read_text())
    return data.get("hidden_size") or (data.get("text_config") or {}).get("hidden_size")


def resolve_ds_config(
    strategy_config: dict | None, training_args, model_args, world_size: int, hidden: int | None
) -> dict:
    """A copy of `strategy_config` with every `auto` replaced; raises ValueError naming any `auto` left."""
    cfg: dict[str, Any] = copy.deepcopy(dict(strategy_config or {}))
    ta = training_args
    micro = max(1, ta.per_device_train_batch_size)
    ga = max(1, ta.gradient_accumulation_steps)
    half = _HALF.get(model_args.dtype)
    top = {
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": ga,
        "train_batch_size": micro * ga * world_size,
        "gradient_clipping": float(ta.max_grad_norm or 0.0),  # 0 = no clipping in DeepSpeed
    }
    for key, value in top.items():
        if cfg.get(key, "auto") == "auto":
            cfg[key] = value
    for flag in ("bf16", "fp16"):
        section = cfg.get(flag)
        if isinstance(section, dict) and section.get("enabled") == "auto":
            section["enabled"] = half == flag
    zero = cfg.get("zero_optimization")
    if isinstance(zero, dict) and hidden:
        # HF Trainer's sizes: buckets ~ one hidden×hidden matrix; small params stay resident
        sizes = {
            "reduce_bucket_size": hidden * hidden,
            "stage3_prefetch_bucket_size": int(0.9 * hidden * hidden),
            "stage3_param_persistence_threshold": 10 * hidden,
        }
        for key, value in sizes.items():
            if zero.get(key) == "auto":
                zero[key] = value
    if offloads(cfg) and "zero_force_ds_cpu_optimizer" not in cfg:
        # our AdamW is torch's: DeepSpeedCPUAdam would need a compiled op
        cfg["zero_force_ds_cpu_optimizer"] = False
    cfg.setdefault("steps_per_print", 1 << 30)  # our metrics report each step; silence DeepSpeed's own
    left = [path for path, value in _walk(cfg) if value == "auto"]
    if left:
        raise ValueError(
            f"`auto` is not resolved by roll-core for: {', '.join(left)}; set a value for each "
            "(roll fills train/micro batch, accumulation, clipping, bf16/fp16 and ZeRO bucket sizes)"
        )
    return cfg


def _walk(d: dict, prefix: str = ""):
    for k, v in d.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _walk(v, path + ".")
        else:
            yield path, v


def known_top_level_keys() -> set[str]:
    """Every string constant of DeepSpeed's config-constant modules: a superset of its top-level keys."""
    import importlib

    names: set[str] = {"pipeline", "hybrid_engine", "compile", "weight_quantization", "zero_optimization"}
    for mod in (
        "deepspeed.runtime.constants",
        "deepspeed.runtime.zero.constants",
        "deepspeed.runtime.data_pipeline.constants",
        "deepspeed.runtime.model_checkpointing.constants",
        "deepspeed.runtime.swap_tensor.constants",
        "deepspeed.profiling.constants",
        "deepspeed.checkpoint.constants",
        "deepspeed.autotuning.constants",
        "deepspeed.comm.constants",
        "deepspeed.compile.constants",
        "deepspeed.elasticity.constants",
        "deepspeed.monitor.constants",
        "deepspeed.compression.constants",
        "deepspeed.runtime.activation_checkpointing.config",
        "deepspeed.nebula.constants",
    ):
        try:
            module = importlib.import_module(mod)
        except ImportError:  # modules move between DeepSpeed releases
            continue
        names |= {v for k, v in vars(module).items() if k.isupper() and isinstance(v, str)}
    return names


def check_ds_config(cfg: dict, prefix: str, world_size: int) -> list[tuple[str, str]]:
    """DeepSpeed's own validation of a resolved config; each problem with its key path under `prefix`."""
    os.environ.setdefault("DS_ACCELERATOR", _accelerator())
    from deepspeed.runtime.config import DeepSpeedConfig
    from pydantic import ValidationError

    problems: list[tuple[str, str]] = []
    known = known_top_level_keys()
    for key in cfg:
        if key not in known:
            problems.append((f"{prefix}.{key}", f"unknown DeepSpeed key{did_you_mean(key, known)}"))
    for section in ("optimizer", "scheduler"):
        if section in cfg:
            problems.append(
                (
                    f"{prefix}.{section}",
                    "roll-core drives torch AdamW and its LR schedule from training_args (learning_rate, "
                    "adam_*, weight_decay, lr_scheduler_type, warmup_*); remove this section",
                )
            )
    # DeepSpeed checks the batch triple against its own world size (1 here): check ours, then drop it
    trio = [
        cfg.get(k)
        for k in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps")
    ]
    if all(isinstance(v, int) for v in trio) and trio[0] != trio[1] * trio[2] * world_size:
        problems.append(
            (
                f"{prefix}.train_batch_size",
                f"{trio[0]} != train_micro_batch_size_per_gpu {trio[1]} × gradient_accumulation_steps "
                f"{trio[2]} × world_size {world_size}",
            )
        )
    probe = {
        k: v for k, v in cfg.items() if k not in ("train_batch_size", "optimizer", "scheduler") and k in known
    }
    try:
        DeepSpeedConfig(probe)
    except ValidationError as exc:
        for e in exc.errors():
            section = _section_of(exc.title)
            loc = ".".join(str(p) for p in e["loc"])
            path = ".".join(p for p in (prefix, section, loc) if p)
            problems.append((path, f"DeepSpeed: {e['msg']}"))
    except (AssertionError, ValueError, TypeError, KeyError) as exc:
        problems.append((prefix, f"DeepSpeed rejects this config: {exc}"))
    return problems


# pydantic model title → the config section it parses
_SECTIONS = {
    "DeepSpeedZeroConfig": "zero_optimization",
    "DeepSpeedZeroOffloadOptimizerConfig": "zero_optimization.offload_optimizer",
    "DeepSpeedZeroOffloadParamConfig": "zero_optimization.offload_param",
    "DeepSpeedBF16Config": "bf16",
    "DeepSpeedFP16Config": "fp16",
    "DeepSpeedFlopsProfilerConfig": "flops_profiler",
    "DeepSpeedActivationCheckpointingConfig": "activation_checkpointing",
    "CompileConfig": "compile",
}


def _section_of(title: str) -> str:
    return _SECTIONS.get(title, "")


def _accelerator() -> str:
    """DeepSpeed's accelerator for this machine, so that it does not probe (and warn) on import."""
    from roll.platforms import current_platform

    return current_platform().device_type


def _model_folder(name: str | None) -> str | None:
    """A local folder holding `name`'s config.json without building anything (builtins once cached)."""
    if not name:
        return None
    if name.startswith("builtin:"):
        from roll.models.registry import cache_dir

        folder = cache_dir() / {"builtin:tiny-qwen2": "tiny-qwen2"}.get(name, "smollm2-135m-instruct")
        return str(folder) if (folder / "config.json").is_file() else None
    return name if (Path(name) / "config.json").is_file() else None


def parameter_count(model_path: str) -> int:
    """Parameters of the model in `model_path`, counted on the meta device (no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def host_memory_need(ds_config: dict, n_params: int, dtype: str) -> int:
    """Bytes of host memory the offloaded model states take, all ranks of a node together."""
    kinds = offloads(ds_config)
    need = 16 * n_params if "optimizer" in kinds else 0  # fp32 master + Adam m, v + fp32 grads
    if "param" in kinds:
        need += (2 if dtype in _HALF else 4) * n_params
    return need


def validate_role(name: str, role, world_size: int) -> list[tuple[str, str]]:
    """Problems of a `deepspeed_train` role's strategy_config, each with its key path (nothing is started)."""
    prefix = f"{name}.strategy_args.strategy_config"
    sc = role.strategy_args.strategy_config
    if sc is not None and not isinstance(sc, dict):
        return [(prefix, f"must be a mapping (e.g. ${{deepspeed_zero3}}), got {type(sc).__name__}")]
    folder = _model_folder(role.model_args.model_name_or_path)
    # bucket sizes only scale with the model: a stand-in hidden size is enough to let DeepSpeed parse
    hidden = hidden_size(folder) or 1024
    try:
        resolved = resolve_ds_config(sc, role.training_args, role.model_args, world_size, hidden)
    except ValueError as exc:
        return [(prefix, str(exc))]
    problems = check_ds_config(resolved, prefix, world_size)
    if offloads(resolved) and folder and not problems:
        import psutil

        need = host_memory_need(resolved, parameter_count(folder), role.model_args.dtype)
        have = psutil.virtual_memory().available
        if need > have:
            problems.append(
                (
                    f"{prefix}.zero_optimization",
                    f"CPU offload ({'+'.join(offloads(resolved))}) needs ~{need / 2**30:.1f} GiB of host "
                    f"memory for the model states; {have / 2**30:.1f} GiB is available: drop offload_param, "
                    "or use a machine with more memory",
                )
            )
    return problems
