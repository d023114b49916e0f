"""Layer 4: token-in-token-out env manager, masks, rollout scheduler groups/seeds/ids, failures, timeouts."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

import pytest

from roll.agentic.env_manager import ChatFormatter, EnvFailure, EnvSlot, TrajEnvManager
from roll.agentic.scheduler import GroupFilter, RolloutScheduler
from roll.config import finalize, load_config
from roll.config.schema import CustomEnv
from roll.models.tiny import build_byte_tokenizer
from roll.strategies.base import GenerationOutput

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class FakePolicy:
    """Answers every turn with fixed text (+ EOS unless `cut`); records the prompts it saw."""

    def __init__(self, tok, text: str, cut: bool = False):
        self.tok, self.text, self.cut = tok, text, cut
        self.prompts: list[list[int]] = []
        self.calls = 0

    def __call__(self, prompts, budgets):
        self.calls += 1
        self.prompts += [list(p) for p in prompts]
        ids = self.tok(self.text, add_special_tokens=False)["input_ids"]
        outs = []
        for b in budgets:
            body = ids[:b] if self.cut else [*ids, self.tok.eos_token_id][:b]
            outs.append(GenerationOutput(body, [-0.5] * len(body), "length" if self.cut else "stop"))
        return outs


@pytest.fixture(scope="module")
def tok():
    return build_byte_tokenizer()


def _custom(tag="FrozenLake", **kw):
    base = dict(
        env_type=tag,
        max_steps=3,
        max_tokens_per_step=64,
        agent_system_template="sys",
        agent_template="Turn {turn_idx}: {observation} ({actions_left} left, {max_response_length} tokens)",
    )
    base.update(kw)
    return CustomEnv(**base)


def _train_scheduler(tok, example: str, *overrides: str):
    """A train RolloutScheduler of two env groups over the tiny-cpu `example`, played by a policy that always
    answers Up; (its env manager, the scheduler)."""
    cfg, _ = load_config(
        EXAMPLES / "tiny-cpu",
        example,
        ["train_env_manager.num_env_groups=2", "train_env_manager.num_groups_partition=[2]", *overrides],
    )
    finalize(cfg)
    mgr = TrajEnvManager(ChatFormatter(tok), cfg.sequence_length, FakePolicy(tok, "<answer>Up</answer>"), 16)
    return mgr, RolloutScheduler(cfg, cfg.train_env_manager, "train", mgr, cfg.seed)


def test_token_in_token_out_layout_and_masks(tok):
    policy = FakePolicy(tok, "<answer>Left</answer>")
    mgr = TrajEnvManager(ChatFormatter(tok), 4096, policy, 64)
    slot = EnvSlot(0, 0, "FrozenLake", _custom())
    (traj,) = mgr.run_episodes([slot], [7], [("FrozenLake_0_0_1", "FrozenLake_0_0_1_0", 0)])
    mgr.close()
    assert not isinstance(traj, EnvFailure)
    # each turn's prompt to the model is exactly the trajectory so far: no re-tokenisation of history
    for p in policy.prompts:
        assert traj.input_ids[: len(p)] == p
    # masked tokens are exactly the model's outputs, with one EOS per turn, never doubled
    model_ids = [t for t, m in zip(traj.input_ids, traj.model_token, strict=True) if m]
    answer = tok("<answer>Left</answer>", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert model_ids == answer * len(traj.step_scores)
    text = tok.decode(traj.input_ids)
    assert "<|im_end|><|im_end|>" not in text
    assert text.count("<|im_start|>system") == 1 and text.count("<|im_start|>assistant") == len(
        traj.step_scores
    )
    assert "Turn 2:" in text and "(2 left, 64 tokens)" in text
    assert traj.prompt_length == len(policy.prompts[0])
    assert "num_actions" in traj.metrics and "action_is_valid" in traj.metrics


def test_length_cut_response_gets_end_token_before_next_turn(tok):
    policy = FakePolicy(tok, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", cut=True)
    mgr = TrajEnvManager(ChatFormatter(tok), 4096, policy, 8)
    (traj,) = mgr.run_episodes([EnvSlot(0, 0, "FrozenLake", _custom(max_steps=2))], [1], [("t", "t_0", 0)])
    mgr.close()
    text = tok.decode(traj.input_ids)
    assert text.count("x" * 8 + "<|im_end|>\n<|im_start|>user") == 1  # closed by us, not masked
    masked = [t for t, m in zip(traj.input_ids, traj.model_token, strict=True) if m]
    assert tok.eos_token_id not in masked


def test_episode_ends_at_context_limit(tok):
    policy = FakePolicy(tok, "<answer>Up</answer>")
    mgr = TrajEnvManager(ChatFormatter(tok), 300, policy, 64)
    (traj,) = mgr.run_episodes([EnvSlot(0, 0, "FrozenLake", _custom(max_steps=10))], [3], [("t", "t_0", 0)])
    mgr.close()
    assert len(traj.input_ids) <= 300
    assert traj.truncated


class BrokenEnv:
    def reset(self, seed=None):
        return "obs", {}

    def step(self, action):
        raise RuntimeError("env crashed")


class SlowEnv(BrokenEnv):
    """A step that ends only when the test says so (or after a minute): a manager that waited would hang."""

    def __init__(self):
        self.release = threading.Event()
        self.finished = False

    def step(self, action):
        self.release.wait(60)
        self.finished = True
        return "", 0.0, True, False, {}


def test_env_failures_and_timeouts_are_reported_not_hung(tok):
    policy = FakePolicy(tok, "a")
    mgr = TrajEnvManager(ChatFormatter(tok), 512, policy, 4, env_timeout_s=0.3)
    broken = EnvSlot(0, 0, "X", _custom(), env=BrokenEnv())
    slow_env = SlowEnv()
    slow = EnvSlot(1, 1, "X", _custom(), env=slow_env)
    res = mgr.run_episodes([broken, slow], [0, 0], [("a", "a_0", 0), ("b", "b_1", 0)])
    assert not slow_env.finished  # the episode was given up at its deadline, not waited for
    slow_env.release.set()
    mgr.close()
    assert isinstance(res[0], EnvFailure) and "crashed" in str(res[0])
    assert isinstance(res[1], EnvFailure) and "timed out" in str(res[1])


def test_scheduler_groups_share_seeds_and_ids(tok):
    mgr, sched = _train_scheduler(tok, "agentic_sokoban", "rollout_batch_size=8")
    trajs, metrics = sched.get_batch(8)
    assert len(trajs) == 8 and metrics["scheduler/dropped_groups"] == 0
    groups: dict[str, list] = {}
    for t in trajs:
        groups.setdefault(t.traj_group_id, []).append(t)
    assert len(groups) == 2
    for gid, ts in groups.items():
        assert len(ts) == 4 and len({t.seed for t in ts}) == 1
        assert len({tuple(t.input_ids[: t.prompt_length]) for t in ts}) == 1  # same start state
        tag, group, episode, gseed = gid.rsplit("_", 3)
        assert (tag, group, episode) == ("SimpleSokoban", str(ts[0].group_id), str(ts[0].episode_id))
        assert int(gseed) == sched.group_seed[ts[0].group_id]
        assert all(t.traj_id == f"{gid}_{t.env_id}" for t in ts)
    # the next batch moves to new episodes (new seeds)
    trajs2, _ = sched.get_batch(8)
    assert {t.seed for t in trajs2}.isdisjoint({t.seed for t in trajs})
    # closing the scheduler closes every env it made (a ROCK-hosted env holds a sandbox until closed)
    closed = []
    for slot in sched.slots:
        slot.env.close = lambda slot=slot: closed.append(slot.env_id)
    sched.close()
    assert sorted(closed) == sorted(s.env_id for s in sched.slots)
    assert all(s.env is None for s in sched.slots)
    mgr.close()


def test_scheduler_drops_failing_group_and_counts(tok):
    mgr, sched = _train_scheduler(
        tok,
        "agentic_frozen_lake",
        "train_env_manager.group_size=2",
        "rollout_batch_size=4",
        "train_env_manager.max_env_retries=1",
    )
    sched.slots[0].env = BrokenEnv()  # group 0's first env fails once; the retry rebuilds it
    trajs, metrics = sched.get_batch(4)
    assert len(trajs) == 4
    assert metrics["scheduler/env_failures"] >= 1
    mgr.close()


def test_rock_hosted_env_goes_through_rock_make(tok, monkeypatch):
    import sys
    import types

    import gem_envs

    calls = []
    fake = types.ModuleType("rock")

    def make(env_id, **kwargs):
        calls.append((env_id, kwargs))
        return gem_envs.make("FrozenLake")

    fake.make = make
    monkeypatch.setitem(sys.modules, "rock", fake)
    custom = _custom(rock={"base_url": "http://admin:8080"}, env_config={"format_penalty": -0.01})
    mgr = TrajEnvManager(ChatFormatter(tok), 2048, FakePolicy(tok, "<answer>Up</answer>"), 16)
    (traj,) = mgr.run_episodes([EnvSlot(0, 0, "FrozenLake", custom)], [0], [("t", "t_0", 0)])
    mgr.close()
    assert calls == [("FrozenLake", {"base_url": "http://admin:8080", "format_penalty": -0.01})]
    assert traj.step_scores


def test_group_size_redundancy_covers_failures_without_retry(tok):
    mgr, sched = _train_scheduler(
        tok,
        "agentic_frozen_lake",
        "train_env_manager.group_size=2",
        "train_env_manager.group_size_redundancy=1",
        "rollout_batch_size=4",
    )
    assert len(sched.slots) == 6 and [s.group_id for s in sched.slots] == [0, 0, 0, 1, 1, 1]
    sched.slots[0].env = BrokenEnv()  # one env of group 0 fails: the redundant env completes the group
    trajs, metrics = sched.get_batch(4)
    mgr.close()
    assert len(trajs) == 4 and metrics["scheduler/env_failures"] == 1
    assert metrics["scheduler/dropped_groups"] == 0
    by_group: dict[int, list] = {}
    for t in trajs:
        by_group.setdefault(t.group_id, []).append(t)
    assert sorted(t.env_id for t in by_group[0]) == [1, 2]  # group_size of the finished envs
    assert sorted(t.env_id for t in by_group[1]) == [3, 4]
    assert all(t.episode_id == 0 for t in trajs)  # no episode was retried


class DropFirstEpisodes(GroupFilter):
    """Test filter: drops every group's episode 0."""

    seen: ClassVar[list] = []

    def filter(self, group_id, episode_id, group):
        DropFirstEpisodes.seen.append((group_id, episode_id, len(group)))
        return episode_id == 0


def test_group_filter_drops_groups_and_runs_next_episodes(tok):
    DropFirstEpisodes.seen = []
    mgr, sched = _train_scheduler(
        tok,
        "agentic_frozen_lake",
        "train_env_manager.group_size=2",
        "rollout_batch_size=4",
        f"train_env_manager.group_filter_cls={__name__}.DropFirstEpisodes",
    )
    trajs, metrics = sched.get_batch(4)
    mgr.close()
    assert metrics["scheduler/group_filter_count"] == 2
    assert len(trajs) == 4 and {t.episode_id for t in trajs} == {1}
    assert sorted(DropFirstEpisodes.seen) == [(0, 0, 2), (0, 1, 2), (1, 0, 2), (1, 1, 2)]
