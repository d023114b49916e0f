"""HF Qwen2/Llama ↔ megatron-core GPTModel weights, and tensor-parallel (TP) sharding: pure tensor functions.

Megatron's fused `linear_qkv` is laid out per query group: for each of the G KV groups, that group's H/G query
heads, then its key head, then its value head (rows of `head_dim`). Its `linear_fc1` is [gate; up] (SwiGLU).
Under TP the column-parallel weights (qkv, fc1, vocab) are split on rows and the row-parallel ones (proj, fc2)
on columns; fc1 splits gate and up separately so that each rank holds [gate_r; up_r]. Names are megatron's
local layer spec (`get_gpt_layer_local_spec`), layer indices global (pipeline stage 0 holds them all).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GptShape:
    """The dimensions the conversion needs, read from an HF config."""

    num_layers: int
    hidden: int
    heads: int
    groups: int  # KV heads (query groups)
    head_dim: int
    ffn: int
    vocab: int
    tied: bool
    qkv_bias: bool

    @classmethod
    def from_hf(cls, config) -> GptShape:
        heads = config.num_attention_heads
        groups = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        if config.model_type not in ("qwen2", "llama"):
            raise ValueError(f"megatron conversion covers qwen2 and llama configs, not {config.model_type!r}")
        if config.model_type == "llama" and (config.attention_bias or config.mlp_bias):
            raise ValueError("llama with attention_bias/mlp_bias (o_proj/MLP biases) is not converted")
        qkv_bias = config.model_type == "qwen2"  # Qwen2 always has q/k/v biases and none elsewhere
        return cls(
            num_layers=config.num_hidden_layers,
            hidden=config.hidden_size,
            heads=heads,
            groups=groups,
            head_dim=head_dim,
            ffn=config.intermediate_size,
            vocab=config.vocab_size,
            tied=bool(getattr(config, "tie_word_embeddings", False)),
            qkv_bias=qkv_bias,
        )


def padded_vocab(vocab: int, tp: int, divisible_by: int = 128) -> int:
    """Megatron's padded vocabulary: a multiple of divisible_by × tp (the extra rows are zeros, sliced off)."""
    step = divisible_by * tp
    return -(-vocab // step) * step


# ---------------------------------------------------------------------------------------------- fusion
def fuse_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, groups: int) -> torch.Tensor:
    """HF q/k/v projections (weights [out, in] or biases [out]) → megatron's per-group interleaved qkv."""
    rest = q.shape[1:]
    per_group = [t.reshape(groups, -1, *rest) for t in (q, k, v)]
    return torch.cat(per_group, dim=1).reshape(-1, *rest)


def split_qkv(qkv: torch.Tensor, heads: int, groups: int, head_dim: int):
    """megatron's per-group interleaved qkv → HF (q, k, v); the inverse of fuse_qkv."""
    rest = qkv.shape[1:]
    q_rows = heads // groups * head_dim
    grouped = qkv.reshape(groups, q_rows + 2 * head_dim, *rest)
    q, k, v = torch.split(grouped, [q_rows, head_dim, head_dim], dim=1)
    return tuple(t.reshape(-1, *rest) for t in (q, k, v))


def fuse_gate_up(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return torch.cat([gate, up], dim=0)


def split_gate_up(fc1: torch.Tensor):
    gate, up = torch.chunk(fc1, 2, dim=0)
    return gate, up


def _pad_rows(t: torch.Tensor, rows: int) -> torch.Tensor:
    if rows == t.shape[0]:
        return t
    return torch.cat([t, t.new_zeros(rows - t.shape[0], *t.shape[1:])], dim=0)


# ------------------------------------------------------------------------------------------ HF ↔ megatron
def hf_to_megatron(hf: dict[str, torch.Tensor], shape: GptShape, vocab_rows: int | None = None) -> dict:
    """A full HF state dict → megatron GPTModel names (TP=1); vocab padded with zero rows to `vocab_rows`."""
    rows = vocab_rows or shape.vocab
    out = {"embedding.word_embeddings.weight": _pad_rows(hf["model.embed_tokens.weight"], rows)}
    for i in range(shape.num_layers):
        src, dst = f"model.layers.{i}.", f"decoder.layers.{i}."
        attn = src + "self_attn."
        out[dst + "input_layernorm.weight"] = hf[src + "input_layernorm.weight"]
        out[dst + "self_attention.linear_qkv.weight"] = fuse_qkv(
            *(hf[f"{attn}{p}_proj.weight"] for p in "qkv"), shape.groups
        )
        if shape.qkv_bias:
            out[dst + "self_attention.linear_qkv.bias"] = fuse_qkv(
                *(hf[f"{attn}{p}_proj.bias"] for p in "qkv"), shape.groups
            )
        out[dst + "self_attention.linear_proj.weight"] = hf[attn + "o_proj.weight"]
        out[dst + "pre_mlp_layernorm.weight"] = hf[src + "post_attention_layernorm.weight"]
        out[dst + "mlp.linear_fc1.weight"] = fuse_gate_up(
            hf[src + "mlp.gate_proj.weight"], hf[src + "mlp.up_proj.weight"]
        )
        out[dst + "mlp.linear_fc2.weight"] = hf[src + "mlp.down_proj.weight"]
    out["decoder.final_layernorm.weight"] = hf["model.norm.weight"]
    if not shape.tied:
        out["output_layer.weight"] = _pad_rows(hf["lm_head.weight"], rows)
    return out


def megatron_to_hf(mg: dict[str, torch.Tensor], shape: GptShape, with_tied_head: bool = True) -> dict:
    """Full megatron weights (TP=1) → HF names; a tied model also gets `lm_head.weight` (the same tensor)
    when `with_tied_head`, as transformers' state_dict() lists it."""
    embed = mg["embedding.word_embeddings.weight"][: shape.vocab]
    out = {"model.embed_tokens.weight": embed}
    for i in range(shape.num_layers):
        src, dst = f"decoder.layers.{i}.", f"model.layers.{i}."
        attn = dst + "self_attn."
        out[dst + "input_layernorm.weight"] = mg[src + "input_layernorm.weight"]
        q, k, v = split_qkv(
            mg[src + "self_attention.linear_qkv.weight"], shape.heads, shape.groups, shape.head_dim
        )
        out.update({attn + "q_proj.weight": q, attn + "k_proj.weight": k, attn + "v_proj.weight": v})
        if shape.qkv_bias:
            qb, kb, vb = split_qkv(
                mg[src + "self_attention.linear_qkv.bias"], shape.heads, shape.groups, shape.head_dim
            )
            out.update({attn + "q_proj.bias": qb, attn + "k_proj.bias": kb, attn + "v_proj.bias": vb})
        out[attn + "o_proj.weight"] = mg[src + "self_attention.linear_proj.weight"]
        out[dst + "post_attention_layernorm.weight"] = mg[src + "pre_mlp_layernorm.weight"]
        gate, up = split_gate_up(mg[src + "mlp.linear_fc1.weight"])
        out[dst + "mlp.gate_proj.weight"], out[dst + "mlp.up_proj.weight"] = gate, up
        out[dst + "mlp.down_proj.weight"] = mg[src + "mlp.linear_fc2.weight"]
    out["model.norm.weight"] = mg["decoder.final_layernorm.weight"]
    if not shape.tied:
        out["lm_head.weight"] = mg["output_layer.weight"][: shape.vocab]
    elif with_tied_head:
        out["lm_head.weight"] = embed
    return out


# ----------------------------------------------------------------------------------------- TP sharding
_COLUMN = ("linear_qkv.weight", "linear_qkv.bias", "word_embeddings.weight", "output_layer.weight")
_ROW = ("linear_proj.weight", "linear_fc2.weight")
_GATED = ("linear_fc1.weight",)


def tp_kind(name: str) -> str:
    """How megatron splits `name` under TP: "column" (rows), "row" (columns), "gated" (fc1) or "replicated"."""
    for kind, suffixes in (("column", _COLUMN), ("row", _ROW), ("gated", _GATED)):
        if name.endswith(suffixes):
            return kind
    return "replicated"


def shard(full: dict[str, torch.Tensor], tp: int, rank: int) -> dict[str, torch.Tensor]:
    """TP rank `rank`'s slice of full megatron weights (qkv splits whole query groups: needs G % tp == 0)."""
    out = {}
    for name, t in full.items():
        kind = tp_kind(name)
        if kind == "column":
            out[name] = torch.chunk(t, tp, dim=0)[rank]
        elif kind == "row":
            out[name] = torch.chunk(t, tp, dim=1)[rank]
        elif kind == "gated":
            gate, up = split_gate_up(t)
            out[name] = fuse_gate_up(torch.chunk(gate, tp, dim=0)[rank], torch.chunk(up, tp, dim=0)[rank])
        else:
            out[name] = t
    return out


def unshard(shards: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The full weights from every TP rank's slice, in rank order; the inverse of shard."""
    out = {}
    for name in shards[0]:
        parts = [s[name] for s in shards]
        kind = tp_kind(name)
        if kind == "column":
            out[name] = torch.cat(parts, dim=0)
        elif kind == "row":
            out[name] = torch.cat(parts, dim=1)
        elif kind == "gated":
            gates, ups = zip(*(split_gate_up(p) for p in parts), strict=True)
            out[name] = fuse_gate_up(torch.cat(gates, dim=0), torch.cat(ups, dim=0))
        else:
            out[name] = parts[0]
    return out
