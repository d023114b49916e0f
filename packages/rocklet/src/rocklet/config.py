"""Rocklet settings: limits and where it keeps its state. Every limit is a CLI flag and an env var."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

MIB = 1024 * 1024
#: The variable the admin's runtimes put the sandbox's start `env` in (a JSON object of strings).
SESSION_ENV_VAR = "ROCKLET_SESSION_ENV"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def _env_session_env() -> dict[str, str]:
    raw = os.environ.get(SESSION_ENV_VAR)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{SESSION_ENV_VAR}: not valid JSON ({exc})") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"{SESSION_ENV_VAR}: must be a JSON object of string values")
    return value


@dataclass
class RockletConfig:
    """`auth_token` empty disables auth. Limits bound memory whatever a command prints or a client sends."""

    auth_token: str = ""
    #: Most bytes of one command's output kept (first half + last half; the middle is dropped and noted).
    max_output_bytes: int = field(default_factory=lambda: _env_int("ROCKLET_MAX_OUTPUT_BYTES", 8 * MIB))
    #: Largest file `/read_file` and `/read_file_bytes` return in one reply (use `/download` for more).
    max_read_bytes: int = field(default_factory=lambda: _env_int("ROCKLET_MAX_READ_BYTES", 64 * MIB))
    #: Most bytes a background process's stdout (and its stderr) file keeps; the rest is discarded after a marker.
    max_process_output_bytes: int = field(
        default_factory=lambda: _env_int("ROCKLET_MAX_PROCESS_OUTPUT_BYTES", 256 * MIB)
    )
    #: Largest request body (uploads included).
    max_body_bytes: int = field(default_factory=lambda: _env_int("ROCKLET_MAX_BODY_BYTES", 1024 * MIB))
    #: Directory for session rc files, long commands, process output and upload staging (default: a temp dir).
    state_dir: str | None = field(default_factory=lambda: os.environ.get("ROCKLET_STATE_DIR") or None)
    #: `X-Request-ID` replay cache: seconds a reply is kept, how many, bytes in all, and the largest one kept.
    replay_ttl_seconds: float = field(default_factory=lambda: _env_float("ROCKLET_REPLAY_TTL_SECONDS", 300.0))
    replay_max_entries: int = field(default_factory=lambda: _env_int("ROCKLET_REPLAY_MAX_ENTRIES", 256))
    replay_max_bytes: int = field(default_factory=lambda: _env_int("ROCKLET_REPLAY_MAX_BYTES", 8 * MIB))
    replay_max_entry_bytes: int = field(
        default_factory=lambda: _env_int("ROCKLET_REPLAY_MAX_ENTRY_BYTES", 1 * MIB)
    )
    #: Variables every bash session starts with (the sandbox's start `env`, as upstream), under the session's own.
    session_env: dict[str, str] = field(default_factory=_env_session_env)
