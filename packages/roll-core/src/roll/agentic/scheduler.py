"""Rollout scheduler: env groups (same seed within a group), tags and partitions, batches of whole groups.

Env ids are assigned in tag blocks (`num_groups_partition`), `group_id = env_id // group_size`, one
`group_seed` per group; an episode's seed is `loop_seed + group_seed + episode_id`, so all envs of a group
start from the same state. Ids: `traj_group_id = f"{tag}_{group_id}_{episode_id}_{group_seed}"`,
`traj_id = f"{traj_group_id}_{env_id}"` (ROLL's formats). Every batch has a deadline.
"""

from __future__ import annotations

import random
import time
from typing import Any

from roll.agentic.env_manager import EnvFailure, EnvSlot, Trajectory, TrajEnvManager
from roll.config.schema import AgenticConfig, EnvManagerConfig


class RolloutTimeout(TimeoutError):
    """A batch did not complete within rollout_timeout_s."""


class RolloutScheduler:
    def __init__(
        self, cfg: AgenticConfig, mgr: EnvManagerConfig, mode: str, manager: TrajEnvManager, seed: int
    ) -> None:
        self.cfg, self.mgr, self.mode, self.manager = cfg, mgr, mode, manager
        rng = random.Random(f"{mode}:{seed}")
        self.loop_seed = seed if mode == "val" else rng.randint(0, 1_000_000)
        self.slots: list[EnvSlot] = []
        partition = mgr.num_groups_partition or [mgr.num_env_groups]
        env_id = 0
        for tag, n_groups in zip(mgr.tags, partition, strict=True):
            for _ in range(n_groups * mgr.group_size):
                self.slots.append(EnvSlot(env_id, env_id // mgr.group_size, tag, cfg.custom_envs[tag]))
                env_id += 1
        self.n_groups = mgr.num_env_groups
        self.group_seed = [rng.randint(0, 1_000_000) for _ in range(self.n_groups)]
        self.episode_id = [0] * self.n_groups
        self.next_group = 0
        self.dropped_groups = 0
        self.env_failures = 0

    # -- state for checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "episode_id": list(self.episode_id),
            "next_group": self.next_group,
            "loop_seed": self.loop_seed,
            "group_seed": list(self.group_seed),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.episode_id = list(state["episode_id"])
        self.next_group, self.loop_seed = state["next_group"], state["loop_seed"]
        self.group_seed = list(state["group_seed"])

    def group_slots(self, group_id: int) -> list[EnvSlot]:
        return [s for s in self.slots if s.group_id == group_id]

    def get_batch(self, batch_size: int, fresh: bool = False) -> tuple[list[Trajectory], dict[str, float]]:
        """`batch_size` trajectories of whole groups (batch_size < 0: every group once).

        `fresh` restarts episode numbering (validation sees the same episodes every time)."""
        if fresh:
            self.episode_id = [0] * self.n_groups
            self.next_group = 0
        gs = self.mgr.group_size
        need = self.n_groups if batch_size < 0 else batch_size // gs
        deadline = time.monotonic() + self.cfg.rollout_timeout_s
        done: list[list[Trajectory]] = []
        retries: dict[int, int] = {}
        metrics = {"scheduler/dropped_groups": 0.0, "scheduler/env_failures": 0.0}
        while len(done) < need:
            if time.monotonic() > deadline:
                raise RolloutTimeout(
                    f"{self.mode} rollout: {len(done)}/{need} groups after {self.cfg.rollout_timeout_s}s "
                    "(rollout_timeout_s); envs or generation are too slow or failing"
                )
            groups = []
            while len(groups) < need - len(done):
                groups.append(self.next_group)
                self.next_group = (self.next_group + 1) % self.n_groups
                if len(groups) >= self.n_groups:
                    break
            slots, seeds, ids = [], [], []
            for g in groups:
                episode = self.episode_id[g]
                gseed = self.group_seed[g]
                for s in self.group_slots(g):
                    tgid = f"{s.tag}_{g}_{episode}_{gseed}"
                    slots.append(s)
                    seeds.append(self.loop_seed + gseed + episode)
                    ids.append((tgid, f"{tgid}_{s.env_id}", episode))
            results = self.manager.run_episodes(slots, seeds, ids)
            by_group: dict[int, list] = {}
            for s, r in zip(slots, results, strict=True):
                by_group.setdefault(s.group_id, []).append(r)
            for g in groups:
                rs = by_group[g]
                failed = [r for r in rs if isinstance(r, EnvFailure)]
                if failed:
                    metrics["scheduler/env_failures"] += len(failed)
                    retries[g] = retries.get(g, 0) + 1
                    if retries[g] > self.mgr.max_env_retries:  # give up on this episode: next one
                        metrics["scheduler/dropped_groups"] += 1
                        self.episode_id[g] += 1
                        if metrics["scheduler/dropped_groups"] > 10 * max(1, need):
                            raise RuntimeError(
                                f"{self.mode} rollout: envs keep failing; last error: {failed[0]}"
                            )
                    continue  # retried with the same episode (seed) next round
                self.episode_id[g] += 1
                if len(done) < need:
                    done.append(rs)
        trajs = [t for group in done for t in group]
        self.dropped_groups += int(metrics["scheduler/dropped_groups"])
        self.env_failures += int(metrics["scheduler/env_failures"])
        return trajs, metrics
