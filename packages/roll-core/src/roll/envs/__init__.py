"""Env adapters: local gem_envs ids (and ROCK-hosted ones via `custom_envs.<Tag>.rock`), roll's own small
learnable task `roll:LetterEcho-v0`, and ROLL's `sokoban_sandbox` (Sokoban inside a ROCK sandbox),
registered with gem_envs on import."""

from roll.envs.toy import LetterEchoEnv, register_toy_envs

SOKOBAN_SANDBOX_ID = "sokoban_sandbox"


def register_rock_envs() -> None:
    """`sokoban_sandbox` → `SokobanSandboxEnv` (loaded lazily: it needs rock-sdk only when made)."""
    import gem_envs

    if SOKOBAN_SANDBOX_ID not in gem_envs.list_envs():
        gem_envs.register(
            SOKOBAN_SANDBOX_ID,
            "roll.envs.sokoban_sandbox:SokobanSandboxEnv",
            description="ROLL's Sokoban served from a ROCK sandbox (env_config.base_url: the admin)",
        )


register_toy_envs()
register_rock_envs()

__all__ = ["SOKOBAN_SANDBOX_ID", "LetterEchoEnv", "register_rock_envs", "register_toy_envs"]
