"""gem_envs: GEM-protocol text environments for agentic RL.

import gem_envs
env = gem_envs.make("game:Sokoban-v0-easy")
observation, info = env.reset(seed=42)
observation, reward, terminated, truncated, info = env.step("\\\\boxed{up}")
"""

from gem_envs import envs as _builtin_envs  # noqa: F401  (registers the built-in ids)
from gem_envs.core import Env, StepResult
from gem_envs.errors import EnvConfigError, EnvKwargError, ResetNeeded, UnknownEnvError
from gem_envs.registry import EnvSpec, list_envs, make, register, spec
from gem_envs.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv, make_vec

__version__ = "0.1.0"

__all__ = [
    "AsyncVectorEnv",
    "AutoresetMode",
    "Env",
    "EnvConfigError",
    "EnvKwargError",
    "EnvSpec",
    "ResetNeeded",
    "StepResult",
    "SyncVectorEnv",
    "UnknownEnvError",
    "VectorEnv",
    "list_envs",
    "make",
    "make_vec",
    "register",
    "spec",
]
