"""Where the trainer's Sokoban envs run, as config overrides of one `custom_envs.<Tag>` entry.

The shipped configs use `sokoban_sandbox` (the game inside a ROCK sandbox, reached over a port forward).
The same level arguments also run as a local gem_envs `sokoban` or through the admin's GEM API
(`rock.make`), one env per sandbox (`gem`) or many envs packed per sandbox (`gem-pooled`), so the three
paths play the same game and differ only in where the env runs.
"""

from __future__ import annotations

ENV_MODES = ("sandbox", "gem", "gem-pooled", "local")
# the gem_envs id the sandbox's game server runs (roll.envs.sokoban_sandbox's default game_env_id)
LOCAL_ENV_TYPE = "sokoban"


def env_overrides(tag: str, mode: str, base_url: str | None) -> list[str]:
    """Overrides that make `custom_envs.<tag>` (a `sokoban_sandbox` entry) run in `mode`."""
    if mode not in ENV_MODES:
        raise ValueError(f"envs: unknown mode {mode!r}; choose one of {', '.join(ENV_MODES)}")
    if mode != "local" and not base_url:
        raise ValueError(f"envs: mode {mode!r} needs the admin's base_url")
    entry = f"custom_envs.{tag}"
    if mode == "sandbox":
        return [f"{entry}.env_config.base_url={base_url}"]
    swapped = [f"{entry}.env_type={LOCAL_ENV_TYPE}", f"~{entry}.env_config.base_url"]
    if mode == "local":
        return swapped
    rock = [f"+{entry}.rock.base_url={base_url}"]
    if mode == "gem-pooled":
        rock.append(f"+{entry}.rock.mode=pooled")
    return swapped + rock
