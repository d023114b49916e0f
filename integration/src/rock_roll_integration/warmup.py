"""Behaviour-cloning warm-up: expert Sokoban episodes played through the trainer's own env manager and
envs, trained with the actor's train step as supervised learning (advantage 1 on every expert token).
It runs in a pipeline of its own (its own learning rate and optimizer); `copy_policy` then moves the
weights into the RL pipeline.

Why: a random-init byte-level model never writes a valid `<answer>...</answer>`, so RL alone has no reward
signal to climb. With advantage 1 and old log-probs equal to the current ones (one PPO epoch, no cached
old log-probs), the PPO gradient −A·∇ρ at ρ = 1 is exactly the negative log-likelihood gradient.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from rock_roll_integration.expert import SokobanExpert
from roll.agentic.env_manager import TrajEnvManager
from roll.agentic.pipeline import AgenticPipeline, collate
from roll.agentic.scheduler import RolloutScheduler

TRAIN_KEYS = ("input_ids", "attention_mask", "response_mask", "advantages")
# a seed offset so that warm-up episodes differ from the RL run's and the validation's episodes
WARMUP_SEED_OFFSET = 7919


@dataclasses.dataclass
class WarmupResult:
    """What the warm-up did: batches, episodes, the held-out NLL per expert token at the start and end."""

    iterations: int
    episodes: int
    nll_first: float
    nll_last: float
    seconds: float


def _split(total: int, parts: int) -> list[int]:
    """`total` as `parts` near-equal whole numbers (groups per tag)."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def copy_policy(source: AgenticPipeline, target: AgenticPipeline) -> None:
    """`target`'s actor (train and inference workers) gets `source`'s trained weights; its optimizer starts
    fresh, so the RL run keeps its own learning rate."""
    state = source.actor_train.execute_rank0("state_dict")
    target.actor_train.execute_all("load_state_dict", state)
    target.sync_weights(0)


def hand_over_envs(source: RolloutScheduler, target: RolloutScheduler) -> int:
    """Move `source`'s live envs into `target`'s empty slots of the same tag (a sandbox-served env costs a
    sandbox and a game server to start; the RL run reuses the warm-up's). Returns how many moved."""
    free = [slot for slot in target.slots if slot.env is None]
    moved = 0
    for slot in source.slots:
        match = next((t for t in free if t.tag == slot.tag and t.custom == slot.custom), None)
        if slot.env is not None and match is not None:
            match.env, slot.env = slot.env, None
            free.remove(match)
            moved += 1
    return moved


def behaviour_clone(
    pipe: AgenticPipeline,
    iterations: int,
    batch_size: int,
    on_iteration: Callable[[int, float], None] | None = None,
    envs_to: RolloutScheduler | None = None,
    progress: Callable[[int, str], None] | None = None,
) -> WarmupResult:
    """Train `pipe`'s actor on `iterations` batches of `batch_size` expert episodes. Envs are made from the
    train env manager's tags (so they are the run's own envs: local or ROCK-served); afterwards they move
    to `envs_to` (the RL run's train scheduler) or are closed. `on_iteration(i, nll)` reports progress
    (`progress` hears the env manager's, see `TrajEnvManager.progress`);
    the NLL is also logged as `warmup/nll` to `pipe`'s tracker."""
    if iterations <= 0:
        raise ValueError(f"warmup iterations: must be positive, got {iterations}")
    cfg = pipe.cfg
    train = cfg.train_env_manager
    if batch_size < len(train.tags):
        raise ValueError(
            f"warmup batch_size: needs at least one episode per tag ({train.tags}), got {batch_size}"
        )
    # one env per group: the expert is deterministic, so copies of an episode would teach nothing new
    mgr_cfg = dataclasses.replace(
        train,
        group_size=1,
        group_size_redundancy=0,
        num_env_groups=batch_size,
        num_groups_partition=_split(batch_size, len(train.tags)),
        group_filter_cls=None,
    )
    manager = TrajEnvManager(
        pipe.formatter,
        cfg.sequence_length,
        SokobanExpert(pipe.tokenizer),
        train.generating_args.max_new_tokens,
        train.env_timeout_s,
        max_workers=min(16, batch_size),
    )
    manager.progress = progress
    scheduler = RolloutScheduler(cfg, mgr_cfg, "train", manager, cfg.seed + WARMUP_SEED_OFFSET)
    loss = dataclasses.replace(
        pipe.loss_cfg,
        ppo_epochs=1,
        use_cached_old_log_probs=False,
        use_kl_loss=False,
        entropy_loss_coef=0.0,
        loss_agg_mode="token-mean",
    )
    nlls: list[float] = []
    t0 = time.perf_counter()
    try:
        for i in range(iterations):
            trajs, _ = scheduler.get_batch(batch_size)
            batch = collate(trajs, pipe.tokenizer.pad_token_id)
            batch["advantages"] = batch["response_mask"].clone()
            inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
            # the NLL of this fresh batch before training on it: a held-out loss of the expert's moves
            log_probs = pipe.actor_train.execute_dp("compute_log_probs", inputs)
            mask = batch["response_mask"]
            nlls.append(float(-(log_probs * mask).sum() / mask.sum().clamp(min=1)))
            pipe.actor_train.execute_dp("train_step", {k: batch[k] for k in TRAIN_KEYS}, loss, concat=False)
            pipe.tracker.log({"warmup/nll": nlls[-1]}, i)
            if on_iteration is not None:
                on_iteration(i, nlls[-1])
    finally:
        if envs_to is not None:
            hand_over_envs(scheduler, envs_to)
        scheduler.close()
        manager.close()
    return WarmupResult(iterations, iterations * batch_size, nlls[0], nlls[-1], time.perf_counter() - t0)
