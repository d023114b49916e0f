"""`deepspeed_train`: one DeepSpeed engine per actor_train / critic rank (ZeRO 0–3, CPU offload).

The loss code is hf_train's (`roll.algorithms` through `HfTrainStrategy._micro_step`); DeepSpeed owns the
optimizer step: gradients are reduced/partitioned by ZeRO, clipped by `gradient_clipping`, and the LR
schedule is `lr_schedule`'s (transformers' get_scheduler) stepped by the engine. The engine is built once the rank's process group exists
(ZeRO-3 partitions the weights while `from_pretrained` loads them), so every call here is collective: the
pipeline calls each rank with the same number of micro-batches.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import torch

from roll.models.registry import cache_dir
from roll.strategies.ds_config import hidden_size, resolve_ds_config, zero_stage
from roll.strategies.hf_base import load_model_and_tokenizer
from roll.strategies.hf_critic import HfCriticStrategy
from roll.strategies.hf_training import HfTrainStrategy
from roll.strategies.lr_schedule import build_scheduler

TAG = "checkpoint"  # DeepSpeed's tag folder inside <checkpoint>/deepspeed
GATHER_NUMEL = 50_000_000  # ZeRO-3 weight sync gathers at most this many elements at a time


def _prepare_env() -> None:
    """Before `import deepspeed`: JIT ops cached under roll's cache; the platform's accelerator, not a probe."""
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(cache_dir() / "torch_extensions"))
    from roll.platforms import current_platform

    os.environ.setdefault("DS_ACCELERATOR", current_platform().device_type)
    if os.environ.get("ROLL_DS_SHM_COMM", "0") != "1":
        # the shared-memory op only speeds up DeepSpeed-inference all-reduce, which training never calls;
        # skipping it saves its 80–115 s JIT build on a fresh machine (ROLL_DS_SHM_COMM=1 builds it)
        import deepspeed.ops

        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def collective_backend(device: str) -> str:
    """The collective backend of the platform that owns `device` (gloo on CPU, nccl on CUDA, plugins' own)."""
    from roll.platforms import available_platforms

    kind = torch.device(device).type
    for platform in available_platforms().values():
        if platform.device_type == kind:
            return platform.communication_backend
    raise RuntimeError(f"no roll platform for device {device!r}; known: {sorted(available_platforms())}")


def _single_rank_group(device: str) -> None:
    """A 1-rank process group for the local runtime (DeepSpeed always talks through one)."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group(collective_backend(device), rank=0, world_size=1)


class _DeepSpeedTrain:
    """The DeepSpeed half of a train strategy; mixed in before HfTrainStrategy / HfCriticStrategy."""

    def __init__(
        self, worker_config, seed: int = 42, device: str = "cpu", rank: int = 0, world_size: int = 1
    ) -> None:
        self.worker_config, self.device, self.seed = worker_config, device, seed
        self.rank, self.world_size = rank, world_size
        self.micro_batch = max(1, worker_config.infer_batch_size)
        ta = worker_config.training_args
        self.total_optimizer_steps = max(1, ta.max_steps or 1)  # corrected by set_total_steps
        self.global_step = 0
        self.engine = None
        if world_size == 1:
            _single_rank_group(device)
            self.on_process_group()

    def on_process_group(self) -> None:
        """Build the model and the engine; called by the worker once torch.distributed is initialised."""
        _prepare_env()
        # DeepSpeed asks for its launcher's variable; a worker sees only its own device(s)
        os.environ.setdefault("LOCAL_RANK", str(torch.device(self.device).index or 0))
        import deepspeed

        deepspeed.utils.logger.setLevel(logging.WARNING)  # per-call INFO lines drown our step metrics
        # DeepSpeed's comm layer wraps the torch group (zero.Init reads its world size while loading)
        deepspeed.init_distributed(
            dist_backend=collective_backend(self.device),
            auto_mpi_discovery=False,
            rank=self.rank,
            world_size=self.world_size,
        )

        from roll.models.registry import resolve_pretrain

        ma, ta = self.worker_config.model_args, self.worker_config.training_args
        path = resolve_pretrain(ma.model_name_or_path)
        self.ds_config = resolve_ds_config(
            self.worker_config.strategy_args.strategy_config, ta, ma, self.world_size, hidden_size(path)
        )
        self.stage = zero_stage(self.ds_config)
        torch.manual_seed(self.seed)
        if self.stage == 3:
            # while this object lives, from_pretrained builds the model partitioned (zero.Init) and loads
            # each shard; dropped afterwards so that other models of this process load whole
            from transformers.integrations.deepspeed import HfDeepSpeedConfig, unset_hf_deepspeed_config

            hf_ds = HfDeepSpeedConfig(self.ds_config)
            try:
                model, self.tokenizer = load_model_and_tokenizer(ma, self.device)
            finally:
                unset_hf_deepspeed_config()
                del hf_ds
        else:
            model, self.tokenizer = load_model_and_tokenizer(ma, self.device)
        module = self._wrap_model(model)
        optimizer = torch.optim.AdamW(
            module.parameters(),
            lr=ta.learning_rate,
            betas=(ta.adam_beta1, ta.adam_beta2),
            eps=ta.adam_epsilon,
            weight_decay=ta.weight_decay,
        )

        def schedule(opt):
            return build_scheduler(opt, ta, self.total_optimizer_steps)

        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=module, optimizer=optimizer, lr_scheduler=schedule, config=self.ds_config
        )
        if self.stage == 3:
            _share_fp32_partitions(self.optimizer)
        # forwards go through the engine: it keeps ZeRO-3's micro-step count (accumulation) per forward
        self.model = self.engine
        self.model.train()

    # ------------------------------------------------------------------ training
    def _backward(self, loss: torch.Tensor) -> None:
        # DeepSpeed averages gradients over ranks; our losses are normalised by global counts (a sum)
        self.engine.backward(loss * self.world_size, scale_wrt_gas=False)

    def _zero_grad(self) -> None:
        """The engine zeroes gradients itself after its step."""

    def _before_micro_step(self, last: bool) -> None:
        self.engine.set_gradient_accumulation_boundary(last)

    def _optimizer_step(self) -> float:
        """The engine's step (reduce, clip, optimizer, schedule); its norm, or ours where it keeps none."""
        plain_norm = self._plain_grad_norm()
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        return float(plain_norm if norm is None else norm)

    def _plain_grad_norm(self) -> float | None:
        """Stage 0 in fp32 keeps no norm (ZeRO and half precision do): the reduced grads' norm, pre-clipping."""
        if self.stage > 0 or hasattr(self.optimizer, "_global_grad_norm"):
            return None
        grads = [p.grad for p in self.engine.module.parameters() if p.grad is not None]
        return float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0

    # ------------------------------------------------------------------ weights
    def _named_tensors(self):
        """(state-dict key, tensor) in state-dict order; tied weights appear under each of their names."""
        module = self.engine.module
        params = dict(module.named_parameters(remove_duplicate=False))
        buffers = dict(module.named_buffers(remove_duplicate=False))
        for key in module.state_dict(keep_vars=True):
            yield key, params[key] if key in params else buffers[key]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The full weights on rank 0 (other ranks return {}); every rank must call it (ZeRO-3 gathers)."""
        if self.stage < 3:
            return {k: t.detach().cpu().clone() for k, t in self._named_tensors()} if self.rank == 0 else {}
        import deepspeed

        out: dict[str, torch.Tensor] = {}
        named = list(self._named_tensors())
        for chunk in _chunks(named, GATHER_NUMEL):
            params = [t for _, t in chunk if hasattr(t, "ds_id")]
            with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
                if self.rank == 0:
                    out.update({k: t.detach().cpu().clone() for k, t in chunk})
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Rank 0's `state` into every rank's shards (other ranks may pass {})."""
        if self.stage < 3:
            self.engine.module.load_state_dict(state, strict=True)
            return
        import deepspeed

        named = list(self._named_tensors())
        for chunk in _chunks(named, GATHER_NUMEL):
            params = [t for _, t in chunk if hasattr(t, "ds_id")]
            with deepspeed.zero.GatheredParameters(params, modifier_rank=0):
                if self.rank == 0:
                    with torch.no_grad():
                        for k, t in chunk:
                            t.copy_(state[k])

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str) -> None:
        """DeepSpeed's engine checkpoint (model, optimizer shards, scheduler) + our step/RNG + HF export."""
        target = Path(path)
        target.mkdir(parents=True, exist_ok=True)
        self.engine.save_checkpoint(str(target / "deepspeed"), tag=TAG)
        state = self.state_dict()
        if self.rank == 0:
            _export_hf(self.engine.module, state, self.tokenizer, target / "model")
        self._save_train_state(target)

    def load_checkpoint(self, path: str) -> None:
        target = Path(path)
        if not (target / "deepspeed" / TAG).is_dir():
            raise FileNotFoundError(f"no DeepSpeed checkpoint under {target / 'deepspeed' / TAG}")
        loaded, _ = self.engine.load_checkpoint(
            str(target / "deepspeed"), tag=TAG, load_optimizer_states=True, load_lr_scheduler_states=True
        )
        if loaded is None:
            raise RuntimeError(f"DeepSpeed could not load {target / 'deepspeed' / TAG}")
        self._load_train_state(target)
        self.set_total_steps(self.total_optimizer_steps)  # lambdas are not in the scheduler's state


def _share_fp32_partitions(zero_optimizer) -> None:
    """Training in fp32 without offload, ZeRO-3's fp32 master partitions alias its parameter partitions.

    DeepSpeed means to share them when dtype and device match, but its check compares a torch.device with
    a str and never holds, so each rank keeps a second fp32 copy (4 B/param / world size). Shared, the
    optimizer steps the partition the forward gathers from and DeepSpeed's copy-back is a self-copy.
    """
    if getattr(zero_optimizer, "offload_optimizer", True) or getattr(zero_optimizer, "offload_param", True):
        return
    for lp, master in zip(
        zero_optimizer.fp16_partitioned_groups_flat, zero_optimizer.fp32_partitioned_groups_flat, strict=True
    ):
        same = lp.dtype == master.dtype and lp.device == master.device and lp.shape == master.shape
        if same and lp.data_ptr() != master.data_ptr():
            master.data = lp.data


def _chunks(named: list, limit: int):
    """Consecutive groups of (name, tensor) whose full sizes add up to about `limit` elements."""
    chunk, size = [], 0
    for item in named:
        chunk.append(item)
        size += getattr(item[1], "ds_numel", item[1].numel())
        if size >= limit:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _export_hf(model, state: dict[str, torch.Tensor], tokenizer, folder: Path) -> None:
    """An HF folder hf_train / hf_infer load: save_pretrained for the LM, one safetensors for a value model."""
    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(folder, state_dict=state)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "value_model.safetensors"))
    tokenizer.save_pretrained(folder)


class DeepSpeedTrainStrategy(_DeepSpeedTrain, HfTrainStrategy):
    """actor_train on DeepSpeed."""


class DeepSpeedCriticStrategy(_DeepSpeedTrain, HfCriticStrategy):
    """critic (value model) on DeepSpeed."""
