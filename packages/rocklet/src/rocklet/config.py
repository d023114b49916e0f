"""Rocklet settings: limits and where it keeps its state. Every limit is a CLI flag and an env var."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

MIB = 1024 * 1024


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass
class RockletConfig:
    """`auth_token` empty disables auth. Limits bound memory whatever a command prints or a client sends."""

    auth_token: str = ""
    #: Most bytes of one command's output kept (first half + last half; the middle is dropped and noted).
    max_output_bytes: int = field(default_factory=lambda: _env_int("ROCKLET_MAX_OUTPUT_BYTES", 8 * MIB))
    #: Largest file `/read_file` and `/read_file_bytes` return in one reply (use `/download` for more).
    max_read_bytes: int = field(default_factory=lambda: _env_int("ROCKLET_MAX_READ_BYTES", 64 * MIB))
    #: Largest request body (uploads included).
    max_body_bytes: int = field(default_factory=lambda: _env_int("ROCKLET_MAX_BODY_BYTES", 1024 * MIB))
    #: Directory for session rc files, long commands, process output and upload staging (default: a temp dir).
    state_dir: str | None = field(default_factory=lambda: os.environ.get("ROCKLET_STATE_DIR") or None)
