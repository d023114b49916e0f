"""Env adapters: local gem_envs ids (and ROCK-hosted ones via `custom_envs.<Tag>.rock`), plus roll's own
small learnable task `roll:LetterEcho-v0`, registered with gem_envs on import."""

from roll.envs.toy import LetterEchoEnv, register_toy_envs

register_toy_envs()

__all__ = ["LetterEchoEnv", "register_toy_envs"]
