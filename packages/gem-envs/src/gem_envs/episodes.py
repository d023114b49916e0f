"""Running whole episodes with an agent and summarising them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from gem_envs.core import Env


class Agent(Protocol):
    name: str

    def begin(self, env: Env) -> None: ...

    def act(self, observation: str) -> str: ...


@dataclass
class EpisodeResult:
    steps: int
    total_reward: float
    success: bool


@dataclass
class Summary:
    env_id: str
    agent: str
    episodes: int
    success_rate: float
    mean_steps: float
    mean_return: float
    steps_per_second: float


def episode_success(total_reward: float, terminated: bool, truncated: bool, info: dict[str, Any]) -> bool:
    """ROLL-style envs report `metrics.success`; GEM games' rewards sum to 1.0 over a won episode."""
    metrics = info.get("metrics")
    if isinstance(metrics, dict) and "success" in metrics:
        return bool(metrics["success"])
    return terminated and not truncated and total_reward >= 1.0 - 1e-9


def play_episode(env: Env, agent: Agent, seed: int) -> EpisodeResult:
    observation, _ = env.reset(seed=seed)
    agent.begin(env)
    steps, total = 0, 0.0
    while True:
        observation, reward, terminated, truncated, info = env.step(agent.act(observation))
        steps += 1
        total += reward
        if terminated or truncated:
            return EpisodeResult(steps, total, episode_success(total, terminated, truncated, info))


def run_episodes(env: Env, agent: Agent, seeds: range) -> Summary:
    start = time.perf_counter()
    results = [play_episode(env, agent, seed) for seed in seeds]
    elapsed = time.perf_counter() - start
    n = len(results)
    steps = sum(r.steps for r in results)
    return Summary(
        env_id=env.env_id,
        agent=agent.name,
        episodes=n,
        success_rate=sum(r.success for r in results) / n,
        mean_steps=steps / n,
        mean_return=sum(r.total_reward for r in results) / n,
        steps_per_second=steps / elapsed if elapsed > 0 else float("inf"),
    )
