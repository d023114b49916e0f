"""The step's summary statistics with ROLL's metric names (pure: trajectories and tensors in, floats out)."""

from __future__ import annotations

import torch

from roll.agentic.env_manager import Trajectory


def stats(prefix: str, values, out: dict[str, float]) -> None:
    v = torch.as_tensor(values, dtype=torch.float32).flatten()
    if v.numel() == 0:
        return
    out[f"{prefix}/mean"], out[f"{prefix}/max"], out[f"{prefix}/min"] = (
        float(v.mean()),
        float(v.max()),
        float(v.min()),
    )


def trajectory_metrics(trajs: list[Trajectory], prefix: str = "") -> dict[str, float]:
    """rollout/score/*, lengths, env/<tag>/<metric> (val: val/score/*, val/<tag>/score/*, val/env/...)."""
    out: dict[str, float] = {}
    head = "val" if prefix == "val" else "rollout"
    stats(f"{head}/score", [t.episode_score for t in trajs], out)
    if head == "rollout":
        stats("rollout/response_length", [t.response_length for t in trajs], out)
        stats("rollout/prompt_length", [t.prompt_length for t in trajs], out)
        stats("rollout/non_prompt_length", [len(t.input_ids) - t.prompt_length for t in trajs], out)
        turns = sum(max(1, len(t.step_scores)) for t in trajs)
        out["env/response_length"] = sum(t.response_length for t in trajs) / max(1, turns)
    by_tag: dict[str, list[Trajectory]] = {}
    for t in trajs:
        by_tag.setdefault(t.tag, []).append(t)
    env_prefix = "val/env" if head == "val" else "env"
    for tag, ts in by_tag.items():
        if head == "val":
            groups: dict[str, list[float]] = {}
            for t in ts:
                groups.setdefault(t.traj_group_id, []).append(t.episode_score)
            stats(f"val/{tag}/score", [sum(g) / len(g) for g in groups.values()], out)
        keys = sorted({k for t in ts for k in t.metrics})
        for k in keys:
            vals = [t.metrics[k] for t in ts if k in t.metrics]
            out[f"{env_prefix}/{tag}/{k}"] = sum(vals) / len(vals)
    return out
