"""The step's advantage stage, on the driver: episode scores → normalised response rewards → token rewards
(KL-shaped against the reference model) → advantages and returns from the configured estimator."""

from __future__ import annotations

from typing import Any

import torch

from roll.agentic.env_manager import Trajectory
from roll.agentic.step_metrics import stats
from roll.algorithms import (
    compute_advantages,
    group_reward_norm,
    kl_estimate,
    masked_mean,
    token_level_rewards,
)
from roll.config.schema import AgenticConfig

GROUPING_KEYS = {"batch", "traj_group_id", "tags", "tag", "group_id", "env_id", "traj_id"}


def group_key(t: Trajectory, grouping: str) -> Any:
    """The trajectory's reward-normalisation group under `reward_normalization.grouping`."""
    if grouping == "traj_group_id":
        return t.traj_group_id
    if grouping in ("tags", "tag"):
        return t.tag
    if grouping in ("group_id", "env_id", "traj_id"):
        return getattr(t, grouping)
    raise ValueError(f"reward_normalization.grouping {grouping!r} is not one of {sorted(GROUPING_KEYS)}")


def advantage_stage(
    batch: dict[str, torch.Tensor],
    trajs: list[Trajectory],
    cfg: AgenticConfig,
    values: torch.Tensor | None,
    kl_ctrl: Any | None,
) -> dict[str, float]:
    """Adds `advantages` and `returns` to the collated `batch` and returns the stage's metrics. `kl_ctrl` (a KL
    controller, updated here) is given when a reference model produced `batch["ref_log_probs"]`."""
    metrics: dict[str, float] = {}
    mask = batch["response_mask"]
    scores = torch.tensor([t.episode_score for t in trajs], dtype=torch.float32)
    grouping = cfg.reward_normalization.grouping
    keys = None if grouping == "batch" else [group_key(t, grouping) for t in trajs]
    response_rewards = group_reward_norm(scores, keys, cfg.reward_normalization.method)
    if cfg.reward_clip is not None:
        response_rewards = response_rewards.clamp(-cfg.reward_clip, cfg.reward_clip)
    token_rewards = token_level_rewards(response_rewards, mask)
    if kl_ctrl is not None:
        lp = batch.get("old_log_probs", batch["infer_logprobs"] * mask)
        kl = kl_estimate(lp, batch["ref_log_probs"], cfg.kl_penalty) * mask
        current_kl = float(masked_mean(kl, mask))
        metrics["critic/kl"] = current_kl
        metrics["critic/kl_coef"] = kl_ctrl.value
        if cfg.add_token_level_kl:
            token_rewards = token_rewards - kl_ctrl.value * kl
        kl_ctrl.update(current_kl, len(trajs))
    if cfg.reward_clip is not None:
        clipped = (token_rewards.abs() > cfg.reward_clip).float()
        metrics["critic/reward_clip_frac"] = float(masked_mean(clipped, mask))
        token_rewards = token_rewards.clamp(-cfg.reward_clip, cfg.reward_clip)
    adv, returns, adv_metrics = compute_advantages(
        token_rewards,
        mask,
        cfg.adv_estimator,
        cfg.gamma,
        cfg.lambd,
        values,
        cfg.whiten_rewards,
        cfg.whiten_advantages,
        cfg.advantage_clip,
    )
    metrics.update(adv_metrics)
    batch["advantages"] = adv
    batch["returns"] = returns
    stats("critic/score", scores, metrics)
    stats("critic/rewards", (token_rewards * mask).sum(1), metrics)
    valid = mask > 0
    stats("critic/advantages", adv[valid], metrics)
    stats("critic/returns", returns[valid], metrics)
    if values is not None:
        stats("critic/values", values[valid], metrics)
    return metrics
