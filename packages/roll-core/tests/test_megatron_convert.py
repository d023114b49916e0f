"""HF ↔ megatron-core weight conversion and TP sharding (pure tensors: no megatron-core needed)."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, Qwen2Config, Qwen2ForCausalLM

from roll.models.megatron_convert import (
    GptShape,
    fuse_qkv,
    hf_to_megatron,
    megatron_to_hf,
    padded_vocab,
    shard,
    split_qkv,
    unshard,
)

TINY = dict(
    vocab_size=259,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
)
# SmolLM2-135M's config.json (a Llama: GQA 9 heads / 3 KV groups, tied embeddings)
SMOLLM2_135M = dict(
    vocab_size=49152,
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    tie_word_embeddings=True,
)


def _random_state(config, dtype=torch.float32) -> dict[str, torch.Tensor]:
    """Random tensors of the HF model's state-dict shapes (built on the meta device: no init cost)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=gen, dtype=dtype) for k, v in model.state_dict().items()}
    if config.tie_word_embeddings:  # one tensor under both names, as transformers lists it
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    return state


def _assert_same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("tied", [False, True])
def test_qwen2_round_trip_is_exact(tied):
    config = Qwen2Config(**TINY, tie_word_embeddings=tied)
    torch.manual_seed(0)
    hf = {k: v.clone() for k, v in Qwen2ForCausalLM(config).state_dict().items()}
    shape = GptShape.from_hf(config)
    assert shape.qkv_bias and shape.tied == tied
    mg = hf_to_megatron(hf, shape)
    assert "decoder.layers.1.self_attention.linear_qkv.bias" in mg
    assert ("output_layer.weight" in mg) != tied
    _assert_same(megatron_to_hf(mg, shape), hf)


def test_smollm2_135m_shapes_round_trip_is_exact():
    config = LlamaConfig(**SMOLLM2_135M)
    hf = _random_state(config, torch.bfloat16)
    shape = GptShape.from_hf(config)
    assert (shape.heads, shape.groups, shape.head_dim, shape.qkv_bias) == (9, 3, 64, False)
    mg = hf_to_megatron(hf, shape)
    assert mg["decoder.layers.29.self_attention.linear_qkv.weight"].shape == ((9 + 2 * 3) * 64, 576)
    assert mg["decoder.layers.0.mlp.linear_fc1.weight"].shape == (2 * 1536, 576)
    _assert_same(megatron_to_hf(mg, shape), hf)


def test_qkv_layout_is_per_query_group():
    """Rows of group g: its H/G query heads, then its key head, then its value head."""
    heads, groups, d = 4, 2, 3
    q = torch.arange(heads * d)[:, None].float()
    k = 100 + torch.arange(groups * d)[:, None].float()
    v = 200 + torch.arange(groups * d)[:, None].float()
    qkv = fuse_qkv(q, k, v, groups).squeeze(1).tolist()
    group0 = [0, 1, 2, 3, 4, 5, 100, 101, 102, 200, 201, 202]
    group1 = [6, 7, 8, 9, 10, 11, 103, 104, 105, 203, 204, 205]
    assert qkv == group0 + group1
    back = split_qkv(fuse_qkv(q, k, v, groups), heads, groups, d)
    assert all(torch.equal(x, y) for x, y in zip(back, (q, k, v), strict=True))


def test_tp2_shard_then_unshard_is_exact_and_slices_like_megatron():
    config = Qwen2Config(**TINY)
    hf = _random_state(config)
    shape = GptShape.from_hf(config)
    rows = padded_vocab(shape.vocab, 2)
    assert rows == 256 * 2 and rows % 2 == 0
    full = hf_to_megatron(hf, shape, vocab_rows=rows)
    assert torch.equal(full["embedding.word_embeddings.weight"][shape.vocab :], torch.zeros(rows - 259, 64))
    shards = [shard(full, 2, r) for r in range(2)]
    _assert_same(unshard(shards), full)
    _assert_same(megatron_to_hf(unshard(shards), shape), hf)

    # rank 1 holds query group 1 whole (q heads 2–3, k/v head 1) and the second halves of gate and up
    r1 = shards[1]
    q, k, v = split_qkv(r1["decoder.layers.0.self_attention.linear_qkv.weight"], 2, 1, 16)
    assert torch.equal(q, hf["model.layers.0.self_attn.q_proj.weight"][32:])
    assert torch.equal(k, hf["model.layers.0.self_attn.k_proj.weight"][16:])
    assert torch.equal(v, hf["model.layers.0.self_attn.v_proj.weight"][16:])
    fc1 = r1["decoder.layers.0.mlp.linear_fc1.weight"]
    assert torch.equal(fc1[:48], hf["model.layers.0.mlp.gate_proj.weight"][48:])
    assert torch.equal(fc1[48:], hf["model.layers.0.mlp.up_proj.weight"][48:])
    proj = r1["decoder.layers.0.self_attention.linear_proj.weight"]
    assert torch.equal(proj, hf["model.layers.0.self_attn.o_proj.weight"][:, 32:])
    assert torch.equal(r1["decoder.final_layernorm.weight"], hf["model.norm.weight"])


def test_unconvertible_configs_fail_with_the_reason():
    with pytest.raises(ValueError, match="attention_bias/mlp_bias"):
        GptShape.from_hf(LlamaConfig(**TINY, attention_bias=True))
    from transformers import GPT2Config

    with pytest.raises(ValueError, match="not 'gpt2'"):
        GptShape.from_hf(GPT2Config())


def test_megatron_train_without_megatron_core_names_the_extra(monkeypatch):
    import importlib.util as iu

    from roll.strategies import registry

    real = iu.find_spec
    monkeypatch.setattr(
        registry.importlib.util, "find_spec", lambda n, *a: None if n == "megatron" else real(n, *a)
    )
    with pytest.raises(registry.StrategyUnavailable, match=r"pip install roll-core\[megatron\]"):
        registry.load_strategy_class("megatron_train")
    with pytest.raises(registry.StrategyUnavailable, match=r"roll-core\[megatron\]"):
        registry.load_strategy_class("megatron_infer")
