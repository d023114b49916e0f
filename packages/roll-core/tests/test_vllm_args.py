"""The `vllm` strategy up to the engine boundary (no vllm needed): config keys, engine and sampling args,
output conversion, stop tokens, prompt log-probs layout, and config validation through load_and_validate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from roll.config import ConfigError, GeneratingArgs, StrategyArgs, WorkerConfig, load_and_validate
from roll.models.tiny import build_byte_tokenizer
from roll.strategies.vllm_args import (
    CPU_KV_CACHE_BYTES,
    chat_end_token_ids,
    engine_kwargs,
    log_probs_tensor,
    sampling_kwargs,
    stop_token_ids,
    strategy_settings,
    to_generation_output,
    valid_rows,
    validate_role,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SC = "actor_infer.strategy_args.strategy_config"


@dataclass
class Logprob:  # the one field of vllm.logprobs.Logprob the conversion reads
    logprob: float


def _role(strategy_config=None, devices=None, gpus=1, **gen) -> WorkerConfig:
    role = WorkerConfig(
        strategy_args=StrategyArgs("vllm", strategy_config), generating_args=GeneratingArgs(**gen)
    )
    role.num_gpus_per_worker = gpus
    role.device_mapping = devices
    return role


def test_unknown_and_bad_keys_name_their_path():
    problems = dict(
        validate_role(
            "actor_infer",
            _role({"gpu_memory_utilisation": 0.5, "block_size": 0, "load_format": "gguf", "sleep_level": 3}),
            None,
        )
    )
    assert "did you mean 'gpu_memory_utilization'" in problems[f"{SC}.gpu_memory_utilisation"]
    assert problems[f"{SC}.block_size"] == "must be >= 1, got 0"
    assert "unknown load format 'gguf'" in problems[f"{SC}.load_format"]
    assert "must be 1" in problems[f"{SC}.sleep_level"]
    assert validate_role("actor_infer", _role({"enable_prefix_caching": "yes"}), None) == [
        (f"{SC}.enable_prefix_caching", "must be bool, got 'yes'")
    ]
    assert validate_role("actor_infer", _role("zero3"), None)[0][0] == SC


def test_tensor_parallel_size_matches_the_workers_devices():
    assert validate_role("actor_infer", _role({"tensor_parallel_size": 2}, [0, 1], gpus=2), [0, 1]) == []
    ((path, msg),) = validate_role("actor_infer", _role({"tensor_parallel_size": 2}, [0, 1]), [0, 1])
    assert path == f"{SC}.tensor_parallel_size" and "num_gpus_per_worker=1" in msg
    ((path, msg),) = validate_role("actor_infer", _role({"tensor_parallel_size": 2}), None)
    assert "CPU role" in msg


def test_generating_args_ranges():
    problems = dict(validate_role("actor_infer", _role(top_p=0.0, top_k=-2, num_return_sequences=0), None))
    assert set(problems) == {
        "actor_infer.generating_args.top_p",
        "actor_infer.generating_args.top_k",
        "actor_infer.generating_args.num_return_sequences",
    }


def test_engine_kwargs_map_rolls_keys():
    settings = strategy_settings(
        {
            "gpu_memory_utilization": 0.6,
            "block_size": 16,
            "load_format": "auto",
            "max_num_batched_tokens": 2048,
        }
    )
    kw = engine_kwargs("/m", "bf16", settings, seed=7, on_cpu=False)
    assert (
        kw["gpu_memory_utilization"] == 0.6
        and kw["block_size"] == 16
        and kw["max_num_batched_tokens"] == 2048
    )
    assert kw["dtype"] == "bfloat16" and kw["seed"] == 7 and kw["tensor_parallel_size"] == 1
    assert kw["enable_prefix_caching"] is True and kw["enable_sleep_mode"] is True
    assert kw["logprobs_mode"] == "raw_logprobs" and "kv_cache_memory_bytes" not in kw
    cpu = engine_kwargs("/m", "fp32", strategy_settings(None), seed=0, on_cpu=True)
    assert cpu["enable_sleep_mode"] is False and cpu["kv_cache_memory_bytes"] == CPU_KV_CACHE_BYTES
    assert "block_size" not in cpu and cpu["dtype"] == "float32"
    with pytest.warns(UserWarning, match="block_size 16 -> 32"):
        assert engine_kwargs("/m", "bf16", settings, seed=0, on_cpu=True)["block_size"] == 32
    with pytest.raises(ConfigError, match=r"strategy_config.block_sise: unknown vllm key"):
        strategy_settings({"block_sise": 16, "block_size": 16})


def test_sampling_kwargs_greedy_and_sampled():
    stop = {258, 256}
    sampled = sampling_kwargs(GeneratingArgs(top_p=0.99, top_k=100, temperature=0.99), 12, stop, seed=5)
    assert sampled == {
        "n": 1,
        "max_tokens": 12,
        "temperature": 0.99,
        "top_p": 0.99,
        "top_k": 100,
        "seed": 5,
        "stop_token_ids": [256, 258],
        "logprobs": 0,
        "detokenize": False,
    }
    greedy = sampling_kwargs(GeneratingArgs(do_sample=False, top_k=-1, num_return_sequences=3), 4, stop, 5)
    assert (greedy["temperature"], greedy["top_p"], greedy["top_k"], greedy["seed"], greedy["n"]) == (
        0.0,
        1.0,
        0,
        None,
        3,
    )
    assert sampling_kwargs(GeneratingArgs(top_k=0), 4, stop, 1)["top_k"] == 0


def test_output_conversion_keeps_the_stop_token_once():
    out = to_generation_output(
        [5, 9, 258], [{5: Logprob(-0.5)}, {9: Logprob(-1.0)}, {258: Logprob(-0.1)}], "stop"
    )
    assert (
        out.token_ids == [5, 9, 258] and out.log_probs == [-0.5, -1.0, -0.1] and out.finish_reason == "stop"
    )
    assert to_generation_output([5], [{5: Logprob(-0.5)}], "length").finish_reason == "length"
    with pytest.raises(ValueError, match="1 log-probs for 2 tokens"):
        to_generation_output([5, 9], [{5: Logprob(-0.5)}], "length")


def test_stop_ids_include_the_chat_templates_end_token():
    tok = build_byte_tokenizer()
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert chat_end_token_ids(tok) == {im_end}
    assert stop_token_ids(tok) == {im_end, tok.pad_token_id}
    tok.eos_token = (
        "<|endoftext|>"  # a model whose EOS is not the template's end of message (as SmolLM2 base)
    )
    assert im_end in stop_token_ids(tok)
    tok.chat_template = None
    assert chat_end_token_ids(tok) == set()


def test_prompt_log_probs_land_response_aligned_on_either_padding_side():
    ids = torch.tensor([[0, 0, 7, 8, 9], [4, 5, 6, 1, 1], [3, 1, 1, 1, 1]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    rows = valid_rows(ids, mask)
    assert rows[0] == ([2, 3, 4], [7, 8, 9])
    plps = [
        [None, {8: Logprob(-0.8)}, {9: Logprob(-0.9)}],
        [None, {5: Logprob(-0.5)}, {6: Logprob(-0.6)}],
        None,
    ]
    got = log_probs_tensor(tuple(ids.shape), rows, plps)
    want = torch.tensor([[0, 0, -0.8, -0.9], [-0.5, -0.6, 0, 0], [0, 0, 0, 0]])
    assert torch.equal(got, want)


def test_rolls_sokoban_actor_infer_section_validates(tiny_model_dir):
    """ROLL's agentic_val_sokoban.yaml `actor_infer` (strategy_name: vllm) passes with model/device overrides."""
    cpu = [
        f"pretrain={tiny_model_dir}",
        *(f"{r}.device_mapping=null" for r in ("actor_train", "actor_infer", "reference")),
        *(f"+{r}.world_size=1" for r in ("actor_train", "actor_infer", "reference")),
    ]
    cfg, _, _ = load_and_validate(
        EXAMPLES / "qwen2.5-0.5B-agentic", "agentic_val_sokoban", cpu, check_environment=False
    )
    assert cfg.actor_infer.strategy_args.strategy_name == "vllm"
    assert cfg.actor_infer.strategy_args.strategy_config["gpu_memory_utilization"] == 0.6
    with pytest.raises(ConfigError) as info:
        load_and_validate(
            EXAMPLES / "qwen2.5-0.5B-agentic",
            "agentic_val_sokoban",
            [*cpu, f"+{SC}.enable_prefix_cache=true"],
            check_environment=False,
        )
    assert "did you mean 'enable_prefix_caching'" in dict(info.value.problems)[f"{SC}.enable_prefix_cache"]
