"""`pretrain` values: a local HF folder, or a built-in name that is built/converted once into a cache."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """ROLL_CACHE_DIR, else ./.cache/roll under the working directory (never a home-wide cache)."""
    return Path(os.environ.get("ROLL_CACHE_DIR", ".cache/roll")).resolve()


def resolve_pretrain(name: str) -> str:
    """A local folder for `name`: `builtin:tiny-qwen2`, `builtin:smollm2-135m`, or a path (returned as is)."""
    if name == "builtin:tiny-qwen2":
        from roll.models.tiny import build_tiny_model

        return build_tiny_model(cache_dir() / "tiny-qwen2")
    if name == "builtin:smollm2-135m":
        from roll.models.smollm2 import dense_smollm2

        return dense_smollm2(cache_dir() / "smollm2-135m-instruct")
    if not (Path(name) / "config.json").is_file():
        raise FileNotFoundError(
            f"{name!r} is not a local model folder (no config.json); roll-core fetches nothing from a hub"
        )
    return name
