"""FrozenLake with ROLL's semantics: a random solvable map per episode, `<answer>Left</answer>` actions."""

from gem_envs.envs.frozen_lake.env import FrozenLakeEnv

__all__ = ["FrozenLakeEnv"]
