"""`megatron_train`'s strategy_config (ROLL's keys) → parallel sizes and megatron-core TransformerConfig kwargs.

Nothing here imports megatron-core: validation runs before any worker starts, with or without the extra.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from roll.config.hints import did_you_mean

RECOMPUTE = (None, "full", "selective")
KEYS = (
    "tensor_model_parallel_size",
    "pipeline_model_parallel_size",
    "expert_model_parallel_size",
    "use_distributed_optimizer",
    "recompute_granularity",
    "sequence_parallel",
)


@dataclass(frozen=True)
class MegatronParallel:
    tp: int = 1
    pp: int = 1
    ep: int = 1
    distributed_optimizer: bool = False
    recompute: str | None = None
    sequence_parallel: bool = False

    @classmethod
    def from_strategy_config(cls, sc: dict | None) -> MegatronParallel:
        sc = dict(sc or {})
        return cls(
            tp=int(sc.get("tensor_model_parallel_size", 1)),
            pp=int(sc.get("pipeline_model_parallel_size", 1)),
            ep=int(sc.get("expert_model_parallel_size", 1)),
            distributed_optimizer=bool(sc.get("use_distributed_optimizer", False)),
            recompute=sc.get("recompute_granularity"),
            sequence_parallel=bool(sc.get("sequence_parallel", False)),
        )


def transformer_config_kwargs(hf_config, parallel: MegatronParallel, dtype, cpu_init: bool) -> dict:
    """TransformerConfig arguments for a Qwen2/Llama HF config: GQA, SwiGLU, RMSNorm, no bias but Qwen2's qkv."""
    import torch

    from roll.models.megatron_convert import GptShape

    shape = GptShape.from_hf(hf_config)
    kwargs = dict(
        num_layers=shape.num_layers,
        hidden_size=shape.hidden,
        num_attention_heads=shape.heads,
        num_query_groups=shape.groups,
        kv_channels=shape.head_dim,
        ffn_hidden_size=shape.ffn,
        normalization="RMSNorm",
        layernorm_epsilon=hf_config.rms_norm_eps,
        gated_linear_unit=True,
        activation_func=torch.nn.functional.silu,
        add_bias_linear=False,
        add_qkv_bias=shape.qkv_bias,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        tensor_model_parallel_size=parallel.tp,
        pipeline_model_parallel_size=parallel.pp,
        expert_model_parallel_size=parallel.ep,
        sequence_parallel=parallel.sequence_parallel,
        params_dtype=dtype,
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        use_cpu_initialization=cpu_init,
        # the local layer spec's unfused paths: these fusions need apex / TE kernels
        bias_activation_fusion=False,
        bias_dropout_fusion=False,
        masked_softmax_fusion=False,
        apply_rope_fusion=False,
        gradient_accumulation_fusion=False,
        persist_layer_norm=False,
    )
    if parallel.recompute == "full":
        kwargs.update(recompute_granularity="full", recompute_method="uniform", recompute_num_layers=1)
    elif parallel.recompute == "selective":
        kwargs.update(recompute_granularity="selective")
    return kwargs


def rope_theta(hf_config) -> float:
    """RoPE base from transformers 5's rope_parameters (or the older rope_theta attribute)."""
    params = getattr(hf_config, "rope_parameters", None) or {}
    if params.get("rope_type", "default") != "default":
        raise ValueError(
            f"rope_type {params['rope_type']!r} is not mapped to megatron-core (default RoPE only)"
        )
    return float(params.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0)))


def _model_config(name: str | None) -> dict | None:
    from roll.strategies.ds_config import _model_folder

    folder = _model_folder(name)
    return json.loads((Path(folder) / "config.json").read_text()) if folder else None


def validate_role(
    name: str, role, world_size: int, device_type: str, check_environment: bool
) -> list[tuple[str, str]]:
    """Problems of a `megatron_train` role, each with its key path (nothing is imported or started)."""
    prefix = f"{name}.strategy_args.strategy_config"
    sc = role.strategy_args.strategy_config
    if sc is None:
        sc = {}
    if not isinstance(sc, dict):
        return [(prefix, f"must be a mapping of megatron keys ({', '.join(KEYS)}), got {type(sc).__name__}")]
    problems: list[tuple[str, str]] = []
    for key in sc:
        if key not in KEYS:
            hint = did_you_mean(key, KEYS)
            problems.append((f"{prefix}.{key}", f"unknown megatron_train key{hint} known: {', '.join(KEYS)}"))
    for key in ("tensor_model_parallel_size", "pipeline_model_parallel_size", "expert_model_parallel_size"):
        value = sc.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append((f"{prefix}.{key}", f"must be an integer >= 1, got {value!r}"))
    for key in ("use_distributed_optimizer", "sequence_parallel"):
        if not isinstance(sc.get(key, False), bool):
            problems.append((f"{prefix}.{key}", f"must be true or false, got {sc[key]!r}"))
    if sc.get("recompute_granularity") not in RECOMPUTE:
        problems.append(
            (
                f"{prefix}.recompute_granularity",
                f"must be full, selective or null, got {sc['recompute_granularity']!r}",
            )
        )
    if problems:
        return problems
    p = MegatronParallel.from_strategy_config(sc)
    if p.pp > 1:
        problems.append(
            (
                f"{prefix}.pipeline_model_parallel_size",
                "pipeline parallelism is not wired into roll-core's megatron_train (no pipeline schedule); use 1",
            )
        )
    if p.ep > 1:
        problems.append(
            (
                f"{prefix}.expert_model_parallel_size",
                "megatron_train builds dense Qwen2/Llama models (no MoE experts to split); use 1",
            )
        )
    if world_size % p.tp:
        problems.append(
            (
                f"{prefix}.tensor_model_parallel_size",
                f"{p.tp} does not divide the role's {world_size} workers (data parallel = workers / TP)",
            )
        )
    if p.sequence_parallel:
        problems.append(
            (
                f"{prefix}.sequence_parallel",
                "needs Transformer Engine or apex norms (megatron-core's local layer spec, which roll-core "
                "builds, refuses it with torch's RMSNorm); set false",
            )
        )
    model = _model_config(role.model_args.model_name_or_path)
    if model is not None:
        kind = model.get("model_type")
        heads, groups = model.get("num_attention_heads", 1), model.get("num_key_value_heads") or 1
        if kind not in ("qwen2", "llama"):
            problems.append(
                (
                    f"{name}.model_args.model_name_or_path",
                    f"megatron_train converts qwen2 and llama models, not {kind!r}",
                )
            )
        elif heads % p.tp or groups % p.tp:
            problems.append(
                (
                    f"{prefix}.tensor_model_parallel_size",
                    f"{p.tp} must divide the model's {heads} attention heads and {groups} KV heads",
                )
            )
    from roll.platforms import CudaPlatform

    if check_environment and device_type != CudaPlatform.device_type:  # megatron-core is CUDA-only
        problems.append(
            (
                f"{name}.device_mapping",
                f"megatron_train needs CUDA (megatron-core 0.16's rotary embedding and RNG tracker are CUDA-only); "
                f"this platform is {device_type!r}: use deepspeed_train or hf_train here",
            )
        )
    return problems
