"""`hf_train`: PPO/GRPO steps with micro-batches, gradient accumulation, clipping and an LR schedule; with several
ranks (Ray runtime) gradients are summed over a gloo/nccl process group. Its mini-batch loop is every train
strategy's: deepspeed_train and megatron_train override its hooks."""

from __future__ import annotations

from pathlib import Path

import torch

from roll.algorithms.functionals import (
    agg_loss,
    kl_estimate,
    masked_mean,
    ppo_policy_loss,
)
from roll.rng import rng_state, set_rng_state
from roll.strategies.base import LossConfig, TrainStrategy
from roll.strategies.hf_base import (
    _HfBase,
    forward_log_probs,
    read_checkpoint_weights,
)
from roll.strategies.lr_schedule import build_scheduler, resize_scheduler


class HfTrainStrategy(_HfBase, TrainStrategy):
    """AdamW + warmup/decay schedule; one optimizer step per mini-batch of per_device×GA samples."""

    def __init__(
        self, worker_config, seed: int = 42, device: str = "cpu", rank: int = 0, world_size: int = 1
    ) -> None:
        super().__init__(worker_config, seed, device)
        self.rank, self.world_size = rank, world_size
        self.model = self._wrap_model(self.model).to(device)
        self.model.train()
        ta = worker_config.training_args
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=ta.learning_rate,
            betas=(ta.adam_beta1, ta.adam_beta2),
            eps=ta.adam_epsilon,
            weight_decay=ta.weight_decay,
        )
        self.total_optimizer_steps = max(1, ta.max_steps or 1)  # corrected by set_total_steps
        self.scheduler = build_scheduler(self.optimizer, ta, self.total_optimizer_steps)
        self.global_step = 0

    metric_prefix = "actor"

    def _wrap_model(self, model):
        """The trained module built from the loaded causal LM (the critic swaps the LM head for a value head)."""
        return model

    def set_total_steps(self, total: int) -> None:
        """Optimizer steps over the run (max_steps × mini-batches per step × ppo_epochs): the schedule's length."""
        self.total_optimizer_steps = max(1, total)
        resize_scheduler(self.scheduler, self.worker_config.training_args, self.total_optimizer_steps)

    def _backward(self, loss: torch.Tensor) -> None:
        """Gradients of one micro-batch's loss (DeepSpeed routes this through its engine)."""
        loss.backward()

    def _all_reduce_grads(self) -> None:
        import torch.distributed as dist

        if self.world_size > 1 and dist.is_initialized():
            for p in self.model.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)

    def train_step(
        self,
        batch: dict[str, torch.Tensor],
        loss: LossConfig,
        global_tokens: float = 0,
        global_seqs: float = 0,
    ) -> dict[str, float]:
        """PPO epochs over this rank's batch; returns ROLL-named actor metrics (means over backward steps).
        The loop is every train strategy's; they differ in the hooks below (batch, counts, optimizer step)."""
        batch = self._train_batch(batch)
        ta = self.worker_config.training_args
        self.model.train()
        B = batch["input_ids"].shape[0]
        per_device = self._micro_batch_rows()
        mini = min(B, per_device * max(1, ta.gradient_accumulation_steps))
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}

        def add(name: str, value: float) -> None:
            sums[name] = sums.get(name, 0.0) + float(value)
            counts[name] = counts.get(name, 0) + 1

        backward_steps = 0
        for _epoch in range(loss.ppo_epochs):
            for m0 in range(0, B, mini):
                mb = {k: v[m0 : m0 + mini] for k, v in batch.items()}
                n_tok, n_seq = self._global_counts(mb["response_mask"].float())
                self._zero_grad()
                starts = range(0, mb["input_ids"].shape[0], per_device)
                for u0 in starts:
                    self._before_micro_step(last=u0 == starts[-1])
                    ub = {k: v[u0 : u0 + per_device].to(self.device) for k, v in mb.items()}
                    for k, v in self._micro_step(ub, loss, n_tok, n_seq).items():
                        add(k, v)
                    backward_steps += 1
                add(f"{self.metric_prefix}/lr", self.optimizer.param_groups[0]["lr"])
                add(f"{self.metric_prefix}/grad_norm", self._optimizer_step())
                self.global_step += 1
        out = {k: sums[k] / counts[k] for k in sums}
        out[f"{self.metric_prefix}/backward_steps"] = float(backward_steps)
        return out

    # --- the train loop's hooks
    def _train_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The rows this rank trains on (a tensor-parallel group trains on all of its ranks' rows)."""
        return batch

    def _micro_batch_rows(self) -> int:
        return max(1, self.worker_config.training_args.per_device_train_batch_size)

    def _global_counts(self, response_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Response tokens and sequences of a mini-batch over all data-parallel ranks (the losses' divisors)."""
        counts = torch.stack([response_mask.sum(), (response_mask.sum(1) > 0).float().sum()]).to(self.device)
        self._all_reduce_counts(counts)
        return counts[0].cpu().clamp(min=1), counts[1].cpu().clamp(min=1)

    def _all_reduce_counts(self, counts: torch.Tensor) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(counts)

    def _zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def _before_micro_step(self, last: bool) -> None:
        """Called before each micro-batch; `last` is the one the optimizer step follows."""

    def _optimizer_step(self) -> float:
        """Sum gradients over ranks, clip, step optimizer and schedule; the pre-clipping gradient norm."""
        self._all_reduce_grads()
        norm = self._clip_grad_norm(self.worker_config.training_args.max_grad_norm or float("inf"))
        self.optimizer.step()
        self.scheduler.step()
        return float(norm)

    def _clip_grad_norm(self, max_norm: float) -> torch.Tensor:
        return torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)

    def _micro_step(self, ub: dict[str, torch.Tensor], loss: LossConfig, n_tok, n_seq) -> dict[str, float]:
        mask = ub["response_mask"].float()
        want_entropy = loss.entropy_loss_coef != 0
        lp, ent = forward_log_probs(self.model, ub["input_ids"], ub["attention_mask"], with_entropy=True)
        old = ub["old_log_probs"] if loss.use_cached_old_log_probs and "old_log_probs" in ub else lp.detach()
        clip_low = loss.pg_clip_low
        clip_high = loss.pg_clip_high
        pg, diag = ppo_policy_loss(
            lp,
            old,
            ub["advantages"],
            clip_low,
            clip_high,
            (1 + 2 * loss.pg_clip) if loss.dual_clip_loss else None,
        )
        pg_loss = agg_loss(pg, mask, loss.loss_agg_mode, num_tokens=n_tok, num_seqs=n_seq)
        total = pg_loss
        kl_loss = torch.zeros(())
        if loss.use_kl_loss and "ref_log_probs" in ub:
            kl_loss = agg_loss(
                kl_estimate(lp, ub["ref_log_probs"], "k3"),
                mask,
                loss.loss_agg_mode,
                num_tokens=n_tok,
                num_seqs=n_seq,
            )
            total = total + loss.kl_loss_coef * kl_loss
        ent_loss = agg_loss(ent, mask, loss.loss_agg_mode, num_tokens=n_tok, num_seqs=n_seq)
        if want_entropy:
            total = total - loss.entropy_loss_coef * ent_loss
        self._backward(total)
        ratio = diag["ratio"]
        has = mask.sum() > 0
        m = mask if has else torch.ones_like(mask)
        return {
            "actor/pg_loss": float(pg_loss.detach()),
            "actor/kl_loss": float(kl_loss.detach()),
            "actor/total_loss": float(total.detach()),
            "actor/entropy": float(masked_mean(ent.detach(), mask)),
            "actor/approxkl": float(masked_mean(0.5 * (lp.detach() - old) ** 2, mask)),
            "actor/policykl": float(masked_mean(old - lp.detach(), mask)),
            "actor/clipfrac": float(masked_mean(diag["clipped"], mask)),
            "actor/ppo_ratio_high_clipfrac": float(masked_mean(diag["clipped_high"], mask)),
            "actor/ppo_ratio_low_clipfrac": float(masked_mean(diag["clipped_low"], mask)),
            "actor/ratio_mean": float(masked_mean(ratio, mask)),
            "actor/ratio_max": float(ratio[m > 0].max()) if has else 1.0,
            "actor/ratio_min": float(ratio[m > 0].min()) if has else 1.0,
        }

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str) -> None:
        """Model (HF folder), optimizer, scheduler, step and RNG states under `path`."""
        target = Path(path)
        target.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            if hasattr(self.model, "save_pretrained"):
                self.model.save_pretrained(target / "model")
            else:  # the critic's value model: backbone + value head as one safetensors file
                from safetensors.torch import save_file

                (target / "model").mkdir(parents=True, exist_ok=True)
                state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
                save_file(state, str(target / "model" / "value_model.safetensors"))
            self.tokenizer.save_pretrained(target / "model")
        self._save_train_state(
            target, optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict()
        )

    def load_checkpoint(self, path: str) -> None:
        target = Path(path)
        state = read_checkpoint_weights(target)
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("lm_head.weight")]  # tied embeddings are not saved
        if missing or unexpected:
            raise RuntimeError(
                f"checkpoint {target} does not match the model: missing {missing}, unexpected {unexpected}"
            )
        if getattr(self.model.config, "tie_word_embeddings", False) and hasattr(self.model, "tie_weights"):
            self.model.tie_weights()
        saved = self._load_train_state(target)
        self.scheduler.load_state_dict(saved["scheduler"])
        resize_scheduler(self.scheduler, self.worker_config.training_args, self.total_optimizer_steps)
        self.optimizer.load_state_dict(saved["optimizer"])  # carries the current lr of each group

    def _save_train_state(self, target: Path, **extra) -> None:
        """This rank's step, schedule length and random generators, plus the strategy's own `extra` state."""
        state = {
            "global_step": self.global_step,
            "total_optimizer_steps": self.total_optimizer_steps,
            "rng": rng_state(),
            **extra,
        }
        torch.save(state, target / f"train_state_rank{self.rank}.pt")

    def _load_train_state(self, target: Path) -> dict:
        """Restore what `_save_train_state` wrote (step, schedule length, generators); the rest is returned."""
        saved = torch.load(target / f"train_state_rank{self.rank}.pt", weights_only=False)
        self.global_step = saved["global_step"]
        self.total_optimizer_steps = saved["total_optimizer_steps"]
        set_rng_state(saved["rng"])
        return saved
