"""GEM environments hosted by a ROCK admin: `rock.make(env_id)` → `RockEnv` (synchronous, as upstream)."""

from rock.sdk.envs.rock_env import RockEnv, make

__all__ = ["RockEnv", "make"]
