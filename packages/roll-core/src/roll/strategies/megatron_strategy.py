"""`megatron_train`: actor_train on a megatron-core GPTModel (tensor parallel, recompute, sharded optimizer).

The HF checkpoint is loaded on the CPU, converted (roll.models.megatron_convert) and sharded over the TP group;
the loss step is hf_train's (`roll.algorithms` through `HfTrainStrategy._micro_step`) on an HF-style view of
the GPTModel. Ranks form a TP × DP grid (TP innermost, megatron's order): the ranks of one TP group gather
their batches so that all of them run the same tokens; gradients and token counts are summed over DP only.
`state_dict()` returns full HF-named weights (TP all-gather), which is what the train → infer sync loads.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from roll.strategies.hf_base import (
    DTYPES,
    load_model_and_tokenizer,
    read_checkpoint_weights,
)
from roll.strategies.hf_training import HfTrainStrategy
from roll.strategies.lr_schedule import build_scheduler
from roll.strategies.megatron_config import MegatronParallel


def require_cuda(device: str) -> None:
    """megatron-core 0.16's forward asks CUDA (rotary tables, RNG tracker): refuse other devices up front."""
    from roll.platforms import CudaPlatform

    if torch.device(device).type != CudaPlatform.device_type or not torch.cuda.is_available():
        raise RuntimeError(
            f"megatron_train needs CUDA (megatron-core 0.16's rotary embedding and RNG tracker are CUDA-only); got "
            f"device {device!r} with torch {torch.__version__} (cuda available: {torch.cuda.is_available()}). "
            "Use deepspeed_train or hf_train on this machine."
        )


class MegatronTrainStrategy(HfTrainStrategy):
    """actor_train on megatron-core; hf_train's loss and schedule, megatron's model and parallel layout."""

    def __init__(
        self, worker_config, seed: int = 42, device: str = "cpu", rank: int = 0, world_size: int = 1
    ) -> None:
        require_cuda(device)
        self.worker_config, self.device, self.seed = worker_config, device, seed
        self.rank, self.world_size = rank, world_size
        self.micro_batch = max(1, worker_config.infer_batch_size)
        self.parallel = MegatronParallel.from_strategy_config(worker_config.strategy_args.strategy_config)
        ta = worker_config.training_args
        self.total_optimizer_steps = max(1, ta.max_steps or 1)  # corrected by set_total_steps
        self.global_step = 0
        if world_size == 1:
            from roll.strategies.deepspeed_strategy import _single_rank_group

            _single_rank_group(device)
            self.on_process_group()

    def on_process_group(self) -> None:
        """Megatron's parallel groups, then the GPTModel with this TP rank's converted HF weights."""
        from megatron.core import parallel_state, tensor_parallel

        from roll.models.megatron_gpt import MegatronCausalLM, build_gpt, load_hf_state

        if torch.device(self.device).index is not None:
            torch.cuda.set_device(torch.device(self.device))
        if not parallel_state.model_parallel_is_initialized():
            parallel_state.initialize_model_parallel(tensor_model_parallel_size=self.parallel.tp)
        tensor_parallel.model_parallel_cuda_manual_seed(self.seed)
        torch.manual_seed(self.seed)
        self.tp_group = parallel_state.get_tensor_model_parallel_group()
        self.dp_group = parallel_state.get_data_parallel_group()
        self.tp_rank = parallel_state.get_tensor_model_parallel_rank()
        ma, ta = self.worker_config.model_args, self.worker_config.training_args
        # the HF model only carries the weights: megatron has its own attention and recompute
        weights_only = dataclasses.replace(
            ma, attn_implementation="sdpa", disable_gradient_checkpointing=True
        )
        hf_model, self.tokenizer = load_model_and_tokenizer(weights_only, "cpu")
        gpt = build_gpt(hf_model.config, self.parallel, DTYPES[ma.dtype], cpu_init=True)
        self.model = MegatronCausalLM(gpt, hf_model.config)
        load_hf_state(self.model, hf_model.state_dict(), self.parallel.tp, self.tp_rank)
        del hf_model
        self.model.to(self.device).train()
        adamw = dict(
            lr=ta.learning_rate,
            betas=(ta.adam_beta1, ta.adam_beta2),
            eps=ta.adam_epsilon,
            weight_decay=ta.weight_decay,
        )
        self.sharded_optimizer = self.parallel.distributed_optimizer and self.world_size > self.parallel.tp
        if self.sharded_optimizer:
            # megatron's distributed optimizer idea on torch's ZeRO-1: AdamW states split over the DP group
            from torch.distributed.optim import ZeroRedundancyOptimizer

            self.optimizer = ZeroRedundancyOptimizer(
                list(self.model.parameters()),
                optimizer_class=torch.optim.AdamW,
                process_group=self.dp_group,
                **adamw,
            )
        else:
            self.optimizer = torch.optim.AdamW(self.model.parameters(), **adamw)
        self.scheduler = build_scheduler(self.optimizer, ta, self.total_optimizer_steps)

    # ------------------------------------------------------------------ TP groups see one batch
    def _tp_batch(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], slice]:
        """The concatenated batches of this TP group (right-padded to one length) and this rank's rows."""
        if self.parallel.tp == 1:
            return batch, slice(0, batch["input_ids"].shape[0])
        import torch.distributed as dist

        parts: list = [None] * self.parallel.tp
        dist.all_gather_object(parts, {k: v.cpu() for k, v in batch.items()}, group=self.tp_group)
        width = {k: max(p[k].shape[1] for p in parts) for k in batch if batch[k].dim() > 1}
        merged = {
            k: torch.cat(
                [
                    torch.nn.functional.pad(p[k], (0, width[k] - p[k].shape[1])) if k in width else p[k]
                    for p in parts
                ]
            )
            for k in batch
        }
        start = sum(p["input_ids"].shape[0] for p in parts[: self.tp_rank])
        return merged, slice(start, start + batch["input_ids"].shape[0])

    @torch.no_grad()
    def compute_log_probs(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        merged, mine = self._tp_batch(batch)
        lp = super().compute_log_probs(merged)
        return lp[mine, : batch["input_ids"].shape[1] - 1]

    # ------------------------------------------------------------------ training
    def _all_reduce_grads(self) -> None:
        """Sum gradients over the data-parallel group (TP ranks hold different shards: never summed)."""
        import torch.distributed as dist

        if self.world_size > self.parallel.tp:
            for p in self.model.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad, group=self.dp_group)

    def _clip_grad_norm(self, max_norm: float) -> torch.Tensor:
        """megatron's global L2 norm: each TP shard once, replicated weights once (TP rank 0's), then clip."""
        import torch.distributed as dist
        from megatron.core.tensor_parallel import param_is_not_tensor_parallel_duplicate

        params = [p for p in self.model.parameters() if p.grad is not None]
        sq = torch.zeros((), device=self.device)
        for p in params:
            if param_is_not_tensor_parallel_duplicate(p):
                sq = sq + p.grad.float().pow(2).sum()
        if self.parallel.tp > 1:
            dist.all_reduce(sq, group=self.tp_group)
        norm = sq.sqrt()
        coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        for p in params:
            p.grad.mul_(coef.to(p.grad.dtype))
        return norm

    def _train_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self._tp_batch(batch)[0]

    def _micro_batch_rows(self) -> int:
        return super()._micro_batch_rows() * self.parallel.tp  # the TP group's rows of one micro-batch

    def _all_reduce_counts(self, counts: torch.Tensor) -> None:
        if self.world_size > self.parallel.tp:
            import torch.distributed as dist

            dist.all_reduce(counts, group=self.dp_group)

    # ------------------------------------------------------------------ weights and checkpoints
    def state_dict(self) -> dict[str, torch.Tensor]:
        """Full HF-named weights on every rank (a TP all-gather: every rank of the group must call it)."""
        from roll.models.megatron_gpt import export_hf_state

        return export_hf_state(self.model, self.parallel.tp, self.tp_group)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Full HF-named weights into this rank's shards."""
        from roll.models.megatron_gpt import load_hf_state

        load_hf_state(self.model, state, self.parallel.tp, self.tp_rank)

    def save_checkpoint(self, path: str) -> None:
        """An HF folder (rank 0) for hf_train / hf_infer, and each rank's optimizer, schedule, step and RNG."""
        target = Path(path)
        target.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        if self.rank == 0:
            from roll.models.megatron_gpt import save_hf_folder

            save_hf_folder(self.model.config, state, self.tokenizer, target / "model")
        self._save_train_state(
            target,
            optimizer=self._local_optimizer().state_dict(),
            scheduler=self.scheduler.state_dict(),
            cuda_rng=torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
        )
        if self.world_size > 1:  # the HF folder is rank 0's: no rank returns before it is complete
            import torch.distributed as dist

            dist.barrier()

    def load_checkpoint(self, path: str) -> None:
        target = Path(path)
        state = read_checkpoint_weights(target)
        if self.model.shape.tied:  # save_pretrained writes a tied head once
            state.setdefault("lm_head.weight", state["model.embed_tokens.weight"])
        self.load_state_dict(state)
        saved = self._load_train_state(target)
        self._local_optimizer().load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.set_total_steps(self.total_optimizer_steps)  # lambdas and group lrs (ZeRO keeps its own groups)
        if saved["cuda_rng"] is not None:
            torch.cuda.set_rng_state(saved["cuda_rng"])

    def _local_optimizer(self):
        """What this rank checkpoints: its ZeRO shard's AdamW, or the whole AdamW."""
        return self.optimizer.optim if self.sharded_optimizer else self.optimizer
