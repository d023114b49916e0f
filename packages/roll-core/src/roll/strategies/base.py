"""The strategy interface: what a worker asks of a backend (forward log-probs, generate, train, sync, save).

Batches are plain dicts of tensors (`input_ids`, `attention_mask` [B, L]; response-aligned [B, L−1]
`response_mask`, `advantages`, `old_log_probs`, `ref_log_probs`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class GenerationOutput:
    """One generated continuation: its token ids (EOS included when produced), per-token log-probs and why it stopped."""

    token_ids: list[int]
    log_probs: list[float]
    finish_reason: str  # "stop" (EOS/stop id) | "length"


@dataclass
class LossConfig:
    """The PPO loss knobs a train step needs (copied from the top-level config by the pipeline)."""

    pg_clip_low: float = 0.2
    pg_clip_high: float = 0.2
    dual_clip_loss: bool = False
    pg_clip: float = 0.2
    loss_agg_mode: str = "seq-mean-token-mean"
    use_kl_loss: bool = False
    kl_loss_coef: float = 0.0
    entropy_loss_coef: float = 0.0
    ppo_epochs: int = 1
    use_cached_old_log_probs: bool = False  # False: old log-probs = the first forward's detached values
    value_clip: float | None = None  # critic: clip V to V_old ± value_clip in the value loss
    extra: dict[str, Any] = field(default_factory=dict)


class InferenceStrategy(abc.ABC):
    """Holds a model for forward passes (and generation)."""

    @abc.abstractmethod
    def compute_log_probs(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Response-aligned log-probs [B, L−1] of `input_ids[:, 1:]`, zero on padding."""

    def generate(
        self, prompts: list[list[int]], max_new_tokens: list[int], generating_args
    ) -> list[GenerationOutput]:
        raise NotImplementedError(f"{type(self).__name__} does not generate")

    @abc.abstractmethod
    def state_dict(self) -> dict[str, torch.Tensor]: ...

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...

    def offload_states(self) -> None:
        """Free device memory between phases (no-op on CPU)."""
        return None

    def load_states(self) -> None:
        """Bring the model back after offload_states (no-op on CPU)."""
        return None

    def close(self) -> None:
        """Stop whatever the strategy started besides this process (an engine's workers); idempotent."""
        return None


class TrainStrategy(InferenceStrategy):
    """Adds an optimizer, a schedule and checkpoints."""

    @abc.abstractmethod
    def train_step(
        self, batch: dict[str, torch.Tensor], loss: LossConfig, global_tokens: float, global_seqs: float
    ) -> dict[str, float]: ...

    @abc.abstractmethod
    def save_checkpoint(self, path: str) -> None: ...

    @abc.abstractmethod
    def load_checkpoint(self, path: str) -> None: ...
