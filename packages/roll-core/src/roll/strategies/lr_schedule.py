"""The LR schedule of every train strategy: transformers' `get_scheduler`, which ROLL uses too, so a config gives
upstream's learning-rate curve (warmup from 0; `constant` has no warmup, `constant_with_warmup` has). The run's
optimizer-step count is known only once the pipeline has sized its batches (`set_total_steps`), so a schedule is
built for `max_steps` and resized in place: DeepSpeed's engine holds the scheduler object itself."""

from __future__ import annotations

import math
from typing import Any

from torch.optim.lr_scheduler import LambdaLR
from transformers import get_scheduler


def warmup_steps(training_args: Any, total_steps: int) -> int:
    """`warmup_steps`, else `warmup_ratio` of the run (rounded up, as HF's TrainingArguments do)."""
    return training_args.warmup_steps or math.ceil(training_args.warmup_ratio * total_steps)


def build_scheduler(optimizer: Any, training_args: Any, total_steps: int) -> LambdaLR:
    return get_scheduler(
        training_args.lr_scheduler_type,
        optimizer,
        num_warmup_steps=warmup_steps(training_args, total_steps),
        num_training_steps=total_steps,
    )


def resize_scheduler(scheduler: LambdaLR, training_args: Any, total_steps: int) -> None:
    """Give `scheduler` the curve of a `total_steps` run at the step it has reached, and its optimizer that
    step's learning rates."""
    step = scheduler.last_epoch
    scheduler.lr_lambdas = build_scheduler(scheduler.optimizer, training_args, total_steps).lr_lambdas
    lrs = [base * fn(step) for base, fn in zip(scheduler.base_lrs, scheduler.lr_lambdas, strict=True)]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs, strict=True):
        group["lr"] = lr
    scheduler._last_lr = lrs  # what get_last_lr() reports
