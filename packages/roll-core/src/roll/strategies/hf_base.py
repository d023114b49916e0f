"""What the transformers-backed strategies share: loading a model and tokenizer, response-aligned log-probs,
the RNG state a checkpoint keeps, the HF weights a checkpoint holds, and the base of hf_infer / hf_train."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from roll.algorithms.functionals import (
    entropy_from_logits,
    log_probs_from_logits,
)
from roll.strategies.base import InferenceStrategy

DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}


ATTN = {
    None: "sdpa",
    "sdpa": "sdpa",
    "eager": "eager",
    "fa2": "flash_attention_2",
    "flash_attention_2": "flash_attention_2",
    "flash_attn": "flash_attention_2",
}


def _quiet_transformers() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_model_and_tokenizer(model_args, device: str = "cpu"):
    """Load `model_args.model_name_or_path` (a local folder or builtin:*) with dtype/attention settings."""
    _quiet_transformers()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from roll.models.registry import resolve_pretrain

    path = resolve_pretrain(model_args.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=DTYPES[model_args.dtype], attn_implementation=ATTN[model_args.attn_implementation]
    )
    model.to(device)
    if not model_args.disable_gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable()
    return model, tokenizer


def forward_log_probs(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, with_entropy: bool = False
):
    """Response-aligned log-probs [B, L−1] (and entropies) of input_ids[:, 1:] under the model."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, :-1]
    lp = log_probs_from_logits(logits, input_ids[:, 1:]) * attention_mask[:, 1:]
    ent = entropy_from_logits(logits) if with_entropy else None
    return lp, ent


def read_checkpoint_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The HF-format weights a train strategy saved under `<checkpoint>/model` (every safetensors shard)."""
    from safetensors.torch import load_file

    files = sorted((checkpoint / "model").glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no model weights under {checkpoint / 'model'}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


class _HfBase(InferenceStrategy):
    def __init__(self, worker_config, seed: int = 42, device: str = "cpu") -> None:
        self.worker_config = worker_config
        self.device = device
        torch.manual_seed(seed)
        self.model, self.tokenizer = load_model_and_tokenizer(worker_config.model_args, device)
        self.micro_batch = max(1, worker_config.infer_batch_size)

    @torch.no_grad()
    def compute_log_probs(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        parts = []
        ids, mask = batch["input_ids"], batch["attention_mask"]
        for s in range(0, ids.shape[0], self.micro_batch):
            lp, _ = forward_log_probs(
                self.model,
                ids[s : s + self.micro_batch].to(self.device),
                mask[s : s + self.micro_batch].to(self.device),
            )
            parts.append(lp.float().cpu())
        self.model.train(was_training)
        return torch.cat(parts) if parts else torch.zeros(0, max(0, ids.shape[1] - 1))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state, strict=True)
