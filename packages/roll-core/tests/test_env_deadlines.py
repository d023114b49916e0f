"""Env calls on a slow machine: deadlines from measured latency, probes instead of replacement, a
replacement budget per batch with an error naming the cause, progress reports."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import gem_envs
from roll.agentic.env_calls import EnvCaller, LatencyStats
from roll.agentic.env_manager import ChatFormatter, EnvFailure, EnvSlot, TrajEnvManager
from roll.agentic.scheduler import EnvChurnError, RolloutScheduler
from roll.config import finalize, load_config
from roll.config.schema import CustomEnv
from roll.models.tiny import build_byte_tokenizer
from roll.strategies.base import GenerationOutput

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def answer(tok):
    ids = tok("<answer>Up</answer>", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    return lambda prompts, budgets: [
        GenerationOutput(ids[:b], [-0.5] * len(ids[:b]), "stop") for b in budgets
    ]


@pytest.fixture(scope="module")
def tok():
    return build_byte_tokenizer()


def _custom(env_type: str = "FrozenLake") -> CustomEnv:
    return CustomEnv(env_type=env_type, max_steps=2, max_tokens_per_step=32, agent_template="{observation}")


class SlowEnv:
    """A one-step game whose calls take `reset_s` / `step_s`; `healthy()` says `alive`."""

    def __init__(self, reset_s: float = 0.0, step_s: float = 0.0, alive: bool = True, fail_resets: int = 0):
        self.reset_s, self.step_s, self.alive, self.fail_resets = reset_s, step_s, alive, fail_resets
        self.resets = 0
        self.closed = False

    def reset(self, seed=None):
        self.resets += 1
        time.sleep(self.reset_s)
        if self.resets <= self.fail_resets:
            raise RuntimeError("reset failed once")
        return "obs", {}

    def step(self, action):
        time.sleep(self.step_s)
        return "done", 1.0, True, False, {}

    def healthy(self) -> bool:
        return self.alive

    def close(self) -> None:
        self.closed = True


def test_latency_stats_raise_the_deadline_and_describe_the_machine() -> None:
    caller = EnvCaller(None, env_timeout_s=10)
    assert caller.deadline("step") == 10 and caller.deadline("start") == 20  # a fresh env: twice
    for seconds in (30, 40, 45, 50, 60):
        caller.stats.record("start", seconds)
    assert caller.deadline("start") == 180  # 3x the measured p90
    assert caller.deadline("step") == 10  # other kinds keep their own
    text = caller.stats.describe("sandbox")
    assert "sandbox starts take 45 s p50 / 60 s p90 (5 calls) on this machine" in text
    assert LatencyStats().describe("sandbox") == "no sandbox call has finished yet"


def test_slow_call_of_a_healthy_env_gets_one_extension(tok) -> None:
    mgr = TrajEnvManager(ChatFormatter(tok), 512, answer(tok), 8, env_timeout_s=1.0)
    healthy = EnvSlot(0, 0, "X", _custom(), env=SlowEnv(step_s=1.5))  # within the one extension
    broken = EnvSlot(1, 1, "X", _custom(), env=SlowEnv(step_s=5, alive=False))
    res = mgr.run_episodes([healthy, broken], [0, 0], [("a", "a_0", 0), ("b", "b_1", 0)])
    mgr.close()
    assert not isinstance(res[0], EnvFailure), res[0]  # past its deadline, but the probe said alive
    assert isinstance(res[1], EnvFailure) and "timed out" in str(res[1])
    assert mgr.calls.extensions == 1
    assert mgr.replacements == 1 and broken.env is None and healthy.env is not None


def test_a_failed_reset_of_a_healthy_env_reuses_the_env(tok) -> None:
    cfg, _ = load_config(
        EXAMPLES / "tiny-cpu",
        "agentic_frozen_lake",
        [
            "train_env_manager.num_env_groups=2",
            "train_env_manager.num_groups_partition=[2]",
            "train_env_manager.group_size=1",
            "rollout_batch_size=2",
        ],
    )
    finalize(cfg)
    mgr = TrajEnvManager(ChatFormatter(tok), cfg.sequence_length, answer(tok), 16)
    sched = RolloutScheduler(cfg, cfg.train_env_manager, "train", mgr, cfg.seed)
    flaky = SlowEnv(fail_resets=1)
    sched.slots[0].env = flaky
    sched.slots[1].env = SlowEnv()
    trajs, metrics = sched.get_batch(2)
    mgr.close()
    assert len(trajs) == 2 and metrics["scheduler/env_failures"] == 1
    assert sched.slots[0].env is flaky and flaky.resets == 2 and not flaky.closed  # retried in place
    assert metrics["scheduler/env_replaced"] == 0 and mgr.replacements == 0


class _Hanging:
    """Every reset outlives any deadline; the instances made are counted."""

    made = 0

    def __init__(self, **kwargs):
        type(self).made += 1

    def reset(self, seed=None):
        time.sleep(5)
        return "obs", {}

    def step(self, action):
        raise AssertionError("never reached")

    def close(self):
        pass


def test_replacement_budget_ends_the_batch_with_the_cause(tok) -> None:
    env_id = "test:HangingReset-v0"
    if env_id not in gem_envs.list_envs():
        gem_envs.register(env_id, _Hanging)
    cfg, _ = load_config(
        EXAMPLES / "tiny-cpu",
        "agentic_frozen_lake",
        [
            "train_env_manager.num_env_groups=4",
            "train_env_manager.num_groups_partition=[4]",
            "train_env_manager.group_size=1",
            "rollout_batch_size=4",
            "train_env_manager.max_env_retries=100",
        ],
    )
    finalize(cfg)
    for tag in cfg.train_env_manager.tags:
        cfg.custom_envs[tag].env_type = env_id
    mgr = TrajEnvManager(ChatFormatter(tok), cfg.sequence_length, answer(tok), 16, env_timeout_s=0.2)
    sched = RolloutScheduler(cfg, cfg.train_env_manager, "train", mgr, cfg.seed)
    assert sched.replacement_budget == 2  # a quarter of 4 envs, at least 2
    for seconds in (0.3, 0.4, 0.4):  # what earlier starts measured on this "machine"
        mgr.calls.stats.record("start", seconds)
    with pytest.raises(EnvChurnError) as info:
        sched.get_batch(4)
    mgr.close()
    message = str(info.value)
    assert "train rollout: 4 envs replaced" in message and "train_env_manager.max_env_replacements" in message
    assert "env starts take 0.4 s p50 / 0.4 s p90 (3 calls) on this machine" in message
    assert "train_env_manager.env_timeout_s=0.2" in message and "timed out after" in message
    assert _Hanging.made == 4  # one round of starts, then the error: no churn of replacements


def test_progress_reports_episodes_and_what_it_waits_for(tok) -> None:
    seen: list[tuple[int, str]] = []
    lock = threading.Lock()
    mgr = TrajEnvManager(ChatFormatter(tok), 512, answer(tok), 8)
    mgr.progress = lambda done, text: (lock.acquire(), seen.append((done, text)), lock.release())
    slots = [EnvSlot(i, i, "X", _custom(), env=SlowEnv(reset_s=1.2)) for i in range(2)]
    mgr.run_episodes(slots, [0, 0], [("a", "a_0", 0), ("b", "b_1", 0)])
    mgr.close()
    assert sum(done for done, _ in seen) == 2  # one report per finished episode
    texts = [text for _, text in seen if text]
    assert any(t.startswith("waiting for 2 env resets") for t in texts), texts
    assert any(t.startswith("waiting for generation (turn 1, 2 envs)") for t in texts), texts
