"""The `critic` role on `hf_train`: the policy's backbone with a scalar value head, trained with the value loss."""

from __future__ import annotations

import torch

from roll.algorithms.functionals import (
    agg_loss,
    masked_mean,
    value_loss,
)
from roll.strategies.base import LossConfig
from roll.strategies.hf_training import HfTrainStrategy


class ValueModel(torch.nn.Module):
    """The policy backbone (the LM without its head) and a scalar value head: V per position [B, L]."""

    def __init__(self, lm) -> None:
        super().__init__()
        self.backbone = lm.base_model
        hidden = lm.config.hidden_size
        self.v_head = torch.nn.Linear(hidden, 1)
        torch.nn.init.normal_(self.v_head.weight, std=1.0 / (hidden + 1) ** 0.5)
        torch.nn.init.zeros_(self.v_head.bias)
        self.config = lm.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state
        return self.v_head(hidden).squeeze(-1).float()


class HfCriticStrategy(HfTrainStrategy):
    """The `critic` role on `hf_train`: value model trained with the (clipped) value loss.

    Values are response-aligned like log-probs: `values[:, t]` = V(state before `input_ids[:, t + 1]`)."""

    metric_prefix = "critic"

    def _wrap_model(self, model):
        return ValueModel(model)

    def _values(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, attention_mask)[:, :-1] * attention_mask[:, 1:]

    @torch.no_grad()
    def compute_values(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        ids, mask = batch["input_ids"], batch["attention_mask"]
        parts = [
            self._values(
                ids[s : s + self.micro_batch].to(self.device), mask[s : s + self.micro_batch].to(self.device)
            ).cpu()
            for s in range(0, ids.shape[0], self.micro_batch)
        ]
        self.model.train(was_training)
        return torch.cat(parts) if parts else torch.zeros(0, max(0, ids.shape[1] - 1))

    def compute_log_probs(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError("the critic has no language-model head; use compute_values")

    def _micro_step(self, ub: dict[str, torch.Tensor], loss: LossConfig, n_tok, n_seq) -> dict[str, float]:
        mask = ub["response_mask"].float()
        values = self._values(ub["input_ids"], ub["attention_mask"])
        per_token, diag = value_loss(values, ub["values"], ub["returns"], loss.value_clip)
        vf_loss = agg_loss(per_token, mask, loss.loss_agg_mode, num_tokens=n_tok, num_seqs=n_seq)
        self._backward(vf_loss)
        v = values.detach()
        return {
            "critic/loss": float(vf_loss.detach()),
            "critic/value": float(masked_mean(ub["values"], mask)),
            "critic/vpred": float(masked_mean(v, mask)),
            "critic/clipfrac": float(masked_mean(diag["clipped"], mask)),
            "critic/error": float(masked_mean((v - ub["returns"]) ** 2, mask)),
        }
