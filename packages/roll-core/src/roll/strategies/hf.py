"""`hf_infer` and `hf_train`: transformers models driven by plain torch (CPU default, CUDA when placed).

Generation is our own KV-cached sampling loop so that it returns, per row, exactly the token ids the model
produced and their log-probs under the model (temperature 1, before top-k/top-p), stopping on EOS.
`hf_train` runs PPO/GRPO steps with micro-batches, gradient accumulation, clipping and an LR schedule;
with several ranks (Ray runtime) gradients are summed over a gloo/nccl process group.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from roll.algorithms.functionals import (
    agg_loss,
    entropy_from_logits,
    kl_estimate,
    log_probs_from_logits,
    lr_lambda,
    masked_mean,
    ppo_policy_loss,
    value_loss,
)
from roll.strategies.base import GenerationOutput, InferenceStrategy, LossConfig, TrainStrategy

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


def _filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    if top_k and top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0 < top_p < 1:
        sorted_logits, idx = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        cum = probs.cumsum(-1)
        remove = cum - probs > top_p  # keep the smallest prefix whose mass reaches top_p
        sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, idx, sorted_logits)
    return logits


@torch.no_grad()
def sample(
    model,
    prompts: list[list[int]],
    max_new_tokens: list[int],
    stop_ids: set[int],
    pad_id: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    do_sample: bool = True,
    generator: torch.Generator | None = None,
) -> list[GenerationOutput]:
    """Batched KV-cached sampling from left-padded prompts; per-row budgets; stops at a stop id."""
    device = next(model.parameters()).device
    B = len(prompts)
    outputs = [GenerationOutput([], [], "length") for _ in range(B)]
    active = [i for i in range(B) if max_new_tokens[i] > 0 and prompts[i]]
    if not active:
        return outputs
    rows = [prompts[i] for i in active]
    budgets = [max_new_tokens[i] for i in active]
    n, width = len(rows), max(len(r) for r in rows)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width), dtype=torch.long)
    for j, r in enumerate(rows):
        ids[j, width - len(r) :] = torch.tensor(r)
        attn[j, width - len(r) :] = 1
    ids, attn = ids.to(device), attn.to(device)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True)
    past, logits = out.past_key_values, out.logits[:, -1]
    next_pos = pos[:, -1:] + 1
    done = [False] * n
    greedy = not do_sample or temperature <= 0
    for _ in range(max(budgets)):
        logits = logits.float()
        raw_logp = torch.log_softmax(logits, dim=-1)
        if greedy:
            tok = logits.argmax(-1)
        else:
            filtered = _filter_logits(logits / temperature, top_k, top_p)
            probs = torch.softmax(filtered, dim=-1)
            tok = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(device)
        tok_list = tok.tolist()
        lp_list = raw_logp.gather(-1, tok[:, None]).squeeze(-1).tolist()
        for j in range(n):
            if done[j]:
                continue
            o = outputs[active[j]]
            o.token_ids.append(tok_list[j])
            o.log_probs.append(lp_list[j])
            if tok_list[j] in stop_ids:
                done[j], o.finish_reason = True, "stop"
            elif len(o.token_ids) >= budgets[j]:
                done[j] = True
        if all(done):
            break
        feed = torch.tensor([pad_id if done[j] else tok_list[j] for j in range(n)], device=device)[:, None]
        attn = torch.cat([attn, torch.ones((n, 1), dtype=attn.dtype, device=device)], dim=1)
        out = model(
            input_ids=feed, attention_mask=attn, position_ids=next_pos, past_key_values=past, use_cache=True
        )
        past, logits = out.past_key_values, out.logits[:, -1]
        next_pos = next_pos + 1
    return outputs


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


class HfInferStrategy(_HfBase):
    """Generation + forward log-probs with a transformers model in eval mode."""

    def __init__(self, worker_config, seed: int = 42, device: str = "cpu") -> None:
        super().__init__(worker_config, seed, device)
        self.model.eval()
        self.generator = torch.Generator().manual_seed(seed)
        stop = {self.tokenizer.eos_token_id}
        if self.tokenizer.pad_token_id is not None:
            stop.add(self.tokenizer.pad_token_id)
        self.stop_ids = {s for s in stop if s is not None}

    def generate(
        self, prompts: list[list[int]], max_new_tokens: list[int], generating_args
    ) -> list[GenerationOutput]:
        g = generating_args
        outputs: list[GenerationOutput] = []
        chunk = max(
            1,
            self.worker_config.infer_batch_size if self.worker_config.infer_batch_size > 0 else len(prompts),
        )
        chunk = max(chunk, len(prompts)) if self.device == "cpu" else chunk
        for s in range(0, len(prompts), chunk):
            outputs += sample(
                self.model,
                prompts[s : s + chunk],
                max_new_tokens[s : s + chunk],
                self.stop_ids,
                self.tokenizer.pad_token_id,
                temperature=g.temperature,
                top_k=g.top_k,
                top_p=g.top_p,
                do_sample=g.do_sample,
                generator=self.generator,
            )
        return outputs

    def get_rng_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


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
        warmup = ta.warmup_steps or int(ta.warmup_ratio * (ta.max_steps or 1))
        self.total_optimizer_steps = max(1, ta.max_steps or 1)  # corrected by set_total_steps
        self._lr_args = (ta.lr_scheduler_type, warmup)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(ta.lr_scheduler_type, warmup, self.total_optimizer_steps)
        )
        self.global_step = 0

    metric_prefix = "actor"

    def _wrap_model(self, model):
        """The trained module built from the loaded causal LM (the critic swaps the LM head for a value head)."""
        return model

    def set_total_steps(self, total: int) -> None:
        """Optimizer steps over the run (max_steps × mini-batches per step × ppo_epochs): the schedule's length."""
        self.total_optimizer_steps = max(1, total)
        kind, warmup = self._lr_args
        self.scheduler.lr_lambdas = [lr_lambda(kind, warmup, self.total_optimizer_steps)]
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)

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
        torch.save(
            {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "global_step": self.global_step,
                "total_optimizer_steps": self.total_optimizer_steps,
                "rng": _rng_state(),
            },
            target / f"train_state_rank{self.rank}.pt",
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
        saved = torch.load(target / f"train_state_rank{self.rank}.pt", weights_only=False)
        self.total_optimizer_steps = saved.get("total_optimizer_steps", self.total_optimizer_steps)
        self.scheduler.load_state_dict(saved["scheduler"])
        self.scheduler.lr_lambdas = [lr_lambda(*self._lr_args, self.total_optimizer_steps)]
        self.optimizer.load_state_dict(saved["optimizer"])  # carries the current lr of each group
        self.global_step = saved["global_step"]
        _set_rng_state(saved["rng"])


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


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
