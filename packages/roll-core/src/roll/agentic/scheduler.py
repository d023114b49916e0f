"""Rollout scheduler: env groups (same seed within a group), tags and partitions, batches of whole groups.

Env ids are assigned in tag blocks (`num_groups_partition`), `group_id = env_id // group_size`, one
`group_seed` per group; an episode's seed is `loop_seed + group_seed + episode_id`, so all envs of a group
start from the same state. Ids: `traj_group_id = f"{tag}_{group_id}_{episode_id}_{group_seed}"`,
`traj_id = f"{traj_group_id}_{env_id}"` (ROLL's formats). Every batch has a deadline.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from roll.agentic.env_calls import fmt_seconds
from roll.agentic.env_manager import EnvFailure, EnvSlot, Trajectory, TrajEnvManager
from roll.config.schema import AgenticConfig, EnvManagerConfig
from roll.errors import EnvChurnError

logger = logging.getLogger(__name__)


class RolloutTimeout(TimeoutError):
    """A batch did not complete within rollout_timeout_s."""


RETRY_BACKOFF_S = (1.0, 2.0, 4.0, 8.0)  # pause before the n-th round that retries failed episodes


class GroupFilter:
    """ROLL's group filter hook (`<env_manager>.group_filter_cls`): `filter` returns True to drop a finished
    group; the scheduler then runs the group's next episode instead (`scheduler/group_filter_count`)."""

    def __init__(self, config: AgenticConfig, env_manager_config: EnvManagerConfig, mode: str) -> None:
        self.config, self.env_manager_config, self.mode = config, env_manager_config, mode

    def filter(self, group_id: int, episode_id: int, group: list[Trajectory]) -> bool:
        return False


class ZeroVarianceGroupFilter(GroupFilter):
    """Drops groups whose episode scores are all equal (they give zero GRPO advantage): dynamic sampling."""

    def filter(self, group_id: int, episode_id: int, group: list[Trajectory]) -> bool:
        return len({t.episode_score for t in group}) <= 1


# ROLL's class path of the default (no-op) filter resolves to ours
GROUP_FILTER_ALIASES = {
    "roll.distributed.scheduler.rollout_scheduler.GroupFilter": "roll.agentic.scheduler.GroupFilter"
}


def load_group_filter_class(path: str) -> type:
    """`module.Class` or `module:Class` → the class (ImportError/AttributeError name what is missing)."""
    import importlib

    path = GROUP_FILTER_ALIASES.get(path, path)
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    if not module or not attr:
        raise ImportError(f"{path!r} is not a 'module.Class' path")
    cls = getattr(importlib.import_module(module), attr)
    if not callable(getattr(cls, "filter", None)):
        raise TypeError(f"{path!r} has no filter(group_id, episode_id, group) method")
    return cls


class RolloutScheduler:
    def __init__(
        self,
        cfg: AgenticConfig,
        mgr: EnvManagerConfig,
        mode: str,
        manager: TrajEnvManager,
        seed: int,
        gen_lock: Any = None,
        version_fn: Callable[[], int] | None = None,
    ) -> None:
        self.cfg, self.mgr, self.mode, self.manager = cfg, mgr, mode, manager
        # generation holds `gen_lock` (weights are synced under it); `version_fn` = policy version then
        self.gen_lock = gen_lock if gen_lock is not None else contextlib.nullcontext()
        self.version_fn = version_fn or (lambda: 0)
        rng = random.Random(f"{mode}:{seed}")
        self.loop_seed = seed if mode == "val" else rng.randint(0, 1_000_000)
        self.slots: list[EnvSlot] = []
        partition = mgr.num_groups_partition or [mgr.num_env_groups]
        env_id = 0
        # each group runs group_size + group_size_redundancy envs; the first group_size that finish count
        per_group = mgr.group_size + max(0, mgr.group_size_redundancy)
        for tag, n_groups in zip(mgr.tags, partition, strict=True):
            for _ in range(n_groups * per_group):
                self.slots.append(EnvSlot(env_id, env_id // per_group, tag, cfg.custom_envs[tag]))
                env_id += 1
        self.group_filter = (
            load_group_filter_class(mgr.group_filter_cls)(cfg, mgr, mode) if mgr.group_filter_cls else None
        )
        self.n_groups = mgr.num_env_groups
        self.group_seed = [rng.randint(0, 1_000_000) for _ in range(self.n_groups)]
        self.episode_id = [0] * self.n_groups
        self.next_group = 0
        self.dropped_groups = 0
        self.env_failures = 0
        budget = mgr.max_env_replacements
        self.replacement_budget = budget if budget >= 0 else max(2, len(self.slots) // 4)

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

    def close(self) -> None:
        """Close every env this scheduler made: ROCK-hosted envs hold a sandbox until closed."""
        errors = []
        for slot in self.slots:
            if slot.env is not None:
                try:
                    slot.env.close()
                except Exception as exc:  # one env failing to close must not leak the others
                    errors.append(f"{slot.tag}[{slot.env_id}]: {exc!r}")
                slot.env = None
        if errors:
            logger.warning("closing envs failed: %s", "; ".join(errors))

    def _churn_message(self, what: str, last: EnvFailure | None, kept: int, need: int) -> str:
        """Why a batch gave up: what happened, how slow env calls are here, the deadlines, the fix."""
        sandboxed = any(s.custom.rock is not None or "sandbox" in s.custom.env_type for s in self.slots)
        noun = "sandbox" if sandboxed else "env"
        calls = self.manager.calls
        return (
            f"{self.mode} rollout: {what}, {kept}/{need} groups done; "
            f"{calls.stats.describe(noun)}; deadlines: {fmt_seconds(calls.deadline('start'))} for a start, "
            f"{fmt_seconds(calls.deadline('step'))} for a step ({self.mode}_env_manager.env_timeout_s="
            f"{calls.env_timeout_s:g}); last error: {last or '(none)'}. If the machine is busy, raise "
            f"env_timeout_s or run fewer envs ({self.mode}_env_manager.num_env_groups); if env calls fail "
            "rather than time out, the last error says why"
        )

    def group_slots(self, group_id: int) -> list[EnvSlot]:
        return [s for s in self.slots if s.group_id == group_id]

    def get_batch(
        self, batch_size: int, fresh: bool = False, stop: Callable[[], bool] | None = None
    ) -> tuple[list[Trajectory], dict[str, float]]:
        """`batch_size` trajectories of whole groups (batch_size < 0: every group once).

        `fresh` restarts episode numbering (validation sees the same episodes every time); `stop()` true
        ends the wait early (the batch is then incomplete: the caller is shutting down)."""
        if fresh:
            self.episode_id = [0] * self.n_groups
            self.next_group = 0
        gs = self.mgr.group_size
        need = self.n_groups if batch_size < 0 else batch_size // gs
        deadline = time.monotonic() + self.cfg.rollout_timeout_s
        done: list[list[Trajectory]] = []
        retries: dict[int, int] = {}
        t_batch = time.monotonic()
        replaced_before = self.manager.replacements
        failed_rounds = 0
        metrics = {
            "scheduler/dropped_groups": 0.0,
            "scheduler/env_failures": 0.0,
            "scheduler/group_filter_count": 0.0,
        }
        while len(done) < need:
            if stop is not None and stop():
                break
            if time.monotonic() > deadline:
                raise RolloutTimeout(
                    f"{self.mode} rollout: {len(done)}/{need} groups after {self.cfg.rollout_timeout_s}s "
                    "(rollout_timeout_s); envs or generation are too slow or failing"
                )
            if failed_rounds:  # back off before retrying: a loaded machine gets time to catch up
                time.sleep(RETRY_BACKOFF_S[min(failed_rounds, len(RETRY_BACKOFF_S)) - 1])
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
            with self.gen_lock:  # the weights do not change during these episodes
                version = self.version_fn()
                results = self.manager.run_episodes(slots, seeds, ids)
            for r in results:
                if isinstance(r, Trajectory):
                    r.policy_version = version
            by_group: dict[int, list] = {}
            for s, r in zip(slots, results, strict=True):
                by_group.setdefault(s.group_id, []).append(r)
            failures = [r for r in results if isinstance(r, EnvFailure)]
            failed_rounds = failed_rounds + 1 if failures else 0
            replaced = self.manager.replacements - replaced_before
            if replaced > self.replacement_budget:
                raise EnvChurnError(
                    self._churn_message(
                        f"{replaced} envs replaced in {time.monotonic() - t_batch:.0f} s of this batch "
                        f"(budget {self.replacement_budget}: {self.mode}_env_manager.max_env_replacements)",
                        failures[-1] if failures else None,
                        len(done),
                        need,
                    )
                )
            for g in groups:
                rs = by_group[g]
                failed = [r for r in rs if isinstance(r, EnvFailure)]
                finished = [r for r in rs if not isinstance(r, EnvFailure)]
                metrics["scheduler/env_failures"] += len(failed)
                if len(finished) < gs:  # redundant envs cover up to group_size_redundancy failures
                    retries[g] = retries.get(g, 0) + 1
                    if retries[g] > self.mgr.max_env_retries:  # give up on this episode: next one
                        metrics["scheduler/dropped_groups"] += 1
                        self.episode_id[g] += 1
                        if metrics["scheduler/dropped_groups"] > 10 * max(1, need):
                            raise EnvChurnError(
                                self._churn_message(
                                    f"envs keep failing ({int(metrics['scheduler/dropped_groups'])} groups "
                                    "dropped)",
                                    failed[0],
                                    len(done),
                                    need,
                                )
                            )
                    continue  # retried with the same episode (seed) next round
                group = finished[:gs]  # lock-step rollout: the first group_size envs in env order
                episode = self.episode_id[g]
                self.episode_id[g] += 1
                if self.group_filter is not None and self.group_filter.filter(g, episode, group):
                    metrics["scheduler/group_filter_count"] += 1
                    if metrics["scheduler/group_filter_count"] > max(100, 10 * need):
                        raise RuntimeError(
                            f"{self.mode} rollout: {self.mgr.group_filter_cls} filtered out "
                            f"{int(metrics['scheduler/group_filter_count'])} groups while {len(done)}/{need} "
                            "were kept; the filter drops (nearly) every group"
                        )
                    continue  # the group's next episode runs instead
                if len(done) < need:
                    done.append(group)
        metrics["scheduler/env_replaced"] = float(self.manager.replacements - replaced_before)
        trajs = [t for group in done for t in group]
        self.dropped_groups += int(metrics["scheduler/dropped_groups"])
        self.env_failures += int(metrics["scheduler/env_failures"])
        return trajs, metrics
