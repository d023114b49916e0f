"""A megatron-core GPTModel built from an HF Qwen2/Llama config, driven like a transformers causal LM.

`MegatronCausalLM(input_ids=, attention_mask=).logits` is [B, L, vocab] (TP-gathered, vocab padding cut), so
roll.algorithms' log-prob / entropy code and hf_train's loss step run on it unchanged. Needs megatron-core's
parallel state initialised (`parallel_state.initialize_model_parallel`) before building.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from roll.models.megatron_convert import (
    GptShape,
    hf_to_megatron,
    megatron_to_hf,
    padded_vocab,
    shard,
    unshard,
)
from roll.strategies.megatron_config import MegatronParallel, rope_theta, transformer_config_kwargs


def build_gpt(hf_config, parallel: MegatronParallel, dtype: torch.dtype, cpu_init: bool):
    """A GPTModel with megatron-core's local layer spec (no Transformer Engine / apex needed)."""
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.models.gpt.gpt_model import GPTModel
    from megatron.core.transformer.transformer_config import TransformerConfig

    shape = GptShape.from_hf(hf_config)
    config = TransformerConfig(**transformer_config_kwargs(hf_config, parallel, dtype, cpu_init))
    return GPTModel(
        config,
        get_gpt_layer_local_spec(normalization="RMSNorm"),
        vocab_size=padded_vocab(shape.vocab, parallel.tp),
        max_sequence_length=hf_config.max_position_embeddings,
        parallel_output=False,  # full-vocab logits: the loss code is roll.algorithms', not vocab-parallel
        share_embeddings_and_output_weights=shape.tied,
        position_embedding_type="rope",
        rotary_base=rope_theta(hf_config),
    )


def causal_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """megatron's boolean mask [B, 1, L, L] (True = not attended): causal and padded keys hidden."""
    L = attention_mask.shape[1]
    allowed = torch.tril(torch.ones(L, L, dtype=torch.bool, device=attention_mask.device))
    return ~(allowed[None, None] & attention_mask[:, None, None, :].bool())


class MegatronCausalLM(torch.nn.Module):
    """The GPTModel behind an HF-style forward: positions 0..L−1 (as transformers uses without a cache)."""

    def __init__(self, gpt, hf_config) -> None:
        super().__init__()
        self.gpt = gpt
        self.config = hf_config
        self.shape = GptShape.from_hf(hf_config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, use_cache: bool = False):
        B, L = input_ids.shape
        positions = torch.arange(L, device=input_ids.device)[None].expand(B, -1)
        logits = self.gpt(input_ids, positions, attention_mask=causal_mask(attention_mask))
        return SimpleNamespace(logits=logits[..., : self.shape.vocab])


def load_hf_state(model: MegatronCausalLM, hf_state: dict[str, torch.Tensor], tp: int, tp_rank: int) -> None:
    """Full HF weights → this TP rank's megatron shards, copied into `model` (every weight must be set)."""
    rows = model.gpt.embedding.word_embeddings.weight.shape[0] * tp
    mg = shard(hf_to_megatron(hf_state, model.shape, vocab_rows=rows), tp, tp_rank)
    missing, unexpected = model.gpt.load_state_dict(mg, strict=False)
    missing = [k for k in missing if not k.endswith("_extra_state")]  # TE/fp8 metadata, None here
    if missing or unexpected:
        raise RuntimeError(
            f"HF → megatron weights do not fit the GPTModel: missing {missing}, extra {unexpected}"
        )


def megatron_weights(model: MegatronCausalLM) -> dict[str, torch.Tensor]:
    """This rank's megatron tensors by name (no `_extra_state`); tied models have no output_layer."""
    return {k: v for k, v in model.gpt.state_dict(keep_vars=True).items() if isinstance(v, torch.Tensor)}


def export_hf_state(model: MegatronCausalLM, tp: int, tp_group=None) -> dict[str, torch.Tensor]:
    """Full HF-named weights (CPU copies) on every TP rank: each shard is all-gathered over `tp_group`."""
    local = {k: v.detach() for k, v in megatron_weights(model).items()}
    if tp > 1:
        import torch.distributed as dist

        shards: list[dict[str, torch.Tensor]] = [{} for _ in range(tp)]
        for name, t in local.items():
            parts = [torch.empty_like(t) for _ in range(tp)]
            dist.all_gather(parts, t.contiguous(), group=tp_group)
            for r in range(tp):
                shards[r][name] = parts[r]
        local = unshard(shards)
    return {k: v.cpu().clone() for k, v in megatron_to_hf(local, model.shape).items()}


def save_hf_folder(hf_config, state: dict[str, torch.Tensor], tokenizer, folder) -> None:
    """`state` (full HF names) as a transformers folder that hf_train / hf_infer load."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):  # no random init: every weight is assigned from `state`
        model = AutoModelForCausalLM.from_config(hf_config)
    model.load_state_dict(state, assign=True, strict=True)
    if hf_config.tie_word_embeddings:
        model.tie_weights()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
