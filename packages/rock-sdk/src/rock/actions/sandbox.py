"""The admin's sandbox API (`/apis/envs/sandbox/v1/*`): the envelope, start/status/list bodies.

Field names and defaults follow upstream ROCK (`rock/admin/proto/*`, `rock/actions/sandbox/response.py`).
Additions are optional fields (`auto_clear_seconds`, `failure_reason`, `limits_enforced`, ...). The wire's
states are upstream's: a sandbox that failed (its rocklet died, its start timed out) is `stopped` with a
`failure_reason` saying why (`SandboxStatusResponse.failed`); the admin keeps `failed` internally.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BeforeValidator, Field, field_validator

from rock.actions.base import SandboxRequest, WireModel

#: Where the admin serves ROCK's sandbox API (envelope replies) and the GEM env API (raw JSON), as upstream.
SANDBOX_API_PREFIX = "/apis/envs/sandbox/v1"
GEM_API_PREFIX = "/apis/v1/envs/gem"

T = TypeVar("T")

#: Response codes (upstream `rock/_codes.py`).
CODE_OK = 2000
CODE_BAD_REQUEST = 4000
CODE_INTERNAL = 5000
CODE_COMMAND_ERROR = 6000
#: The codes upstream's `codes` enum knows (its clients reject any other).
Code = Literal[2000, 4000, 5000, 6000]

#: Upstream's `State` values, nothing more (its clients reject any other).
State = Literal["pending", "running", "stopped", "archiving", "archived", "deleted"]


def _iso(value: Any) -> Any:
    """Epoch seconds (how the admin keeps times) as ISO 8601 with the zone: upstream's models want strings."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, timezone.utc).isoformat()
    return value


#: A point in time on the wire: an ISO 8601 string, as upstream (`2026-01-21T19:38:00+08:00`).
Timestamp = Annotated[str, BeforeValidator(_iso)]


class RockResponse(WireModel, Generic[T]):
    """The envelope of every `/apis/envs/sandbox/v1` reply (HTTP 200 even when `status` is `Failed`)."""

    status: Literal["Success", "Failed"] = "Success"
    message: str | None = None
    error: str | None = None
    result: T | None = None


class SandboxResponse(WireModel):
    """`result` of a failed call (and the base of the start reply): a code and why."""

    code: Code | None = None
    exit_code: int | None = None
    failure_reason: str | None = None
    #: Additions: the class of the remote exception and its details, so a client can raise the same type.
    class_path: str | None = None
    extra_info: dict[str, Any] = Field(default_factory=dict)


class SandboxStartRequest(WireModel):
    """`POST /start`, `/start_async`. `memory` like `8g`, `512m`, `1.5g` or bytes; `cpus` may be fractional."""

    image: str = "python:3.11"
    image_os: str = "linux"
    auto_clear_time_minutes: int | None = None
    #: Upstream's SDK sends this too (minutes); accepted as an alias of `auto_clear_time_minutes`.
    auto_clear_time: int | None = None
    #: Addition: idle seconds before an automatic stop (wins over the minutes fields; 0 = never).
    auto_clear_seconds: float | None = None
    pull: str = "missing"
    memory: str = "8g"
    cpus: float = 2
    limit_cpus: float | None = None
    sandbox_id: str | None = None
    registry_username: str | None = None
    registry_password: str | None = None
    startup_timeout: float | None = None
    use_kata_runtime: bool = False
    auto_archive_seconds: int | None = None
    auto_delete_seconds: int | None = None
    disk: str = "50G"
    num_gpus: int | None = None
    accelerator_type: str | None = None
    #: Addition: environment variables for every session and command of the sandbox.
    env: dict[str, str] | None = None

    @field_validator("env")
    @classmethod
    def _env_is_an_environment(cls, env: dict[str, str] | None) -> dict[str, str] | None:
        """What `execve` can take: a name without `=` or NUL, a value without NUL (else the start fails late)."""
        for name, value in (env or {}).items():
            if not name or "=" in name or "\0" in name:
                raise ValueError(f"env: variable name {name!r} must be non-empty, without '=' or NUL")
            if "\0" in value:
                raise ValueError(f"env: the value of {name!r} contains a NUL byte")
        return env


class SandboxStartResponse(SandboxResponse):
    sandbox_id: str | None = None
    host_name: str | None = None
    host_ip: str | None = None
    cpus: float | None = None
    memory: str | None = None
    disk: str | None = None


class PhaseStatus(WireModel):
    """One start phase (`image_pull`, `docker_run`): waiting | running | success | failed | timeout."""

    status: str = "waiting"
    message: str = ""
    started_at: Timestamp | None = None
    completed_at: Timestamp | None = None


class StateHistoryEntry(WireModel):
    """A transition (upstream's `StateTransitionRecord`); `reason` is an addition."""

    from_state: str
    to_state: str
    event: str
    timestamp: Timestamp
    reason: str = ""


class SandboxStatusResponse(WireModel):
    sandbox_id: str
    status: dict[str, PhaseStatus] = Field(default_factory=dict)
    port_mapping: dict[str, Any] = Field(default_factory=dict)
    host_name: str | None = None
    host_ip: str | None = None
    is_alive: bool = False
    image: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    gateway_version: str | None = None
    swe_rex_version: str | None = None
    user_id: str | None = None
    experiment_id: str | None = None
    namespace: str | None = None
    cpus: float | None = None
    memory: str | None = None
    num_gpus: float | None = None
    accelerator_type: str | None = None
    disk: str | None = None
    state: State | None = None
    start_time: Timestamp | None = None
    stop_time: Timestamp | None = None
    create_time: Timestamp | None = None
    archive_time: Timestamp | None = None
    delete_time: Timestamp | None = None
    auto_stop_time: Timestamp | None = None
    auto_archive_time: Timestamp | None = None
    auto_delete_time: Timestamp | None = None
    state_history: list[StateHistoryEntry] = Field(default_factory=list)
    # Additions.
    failure_reason: str | None = None
    auto_clear_seconds: float | None = None
    last_activity_time: Timestamp | None = None
    isolation: str | None = None
    limits_enforced: bool | None = None
    limits_message: str | None = None

    @field_validator("state", mode="before")
    @classmethod
    def _upstream_state(cls, state: Any) -> Any:
        # Upstream has no failed state: a failed sandbox is a stopped one whose failure_reason says why.
        return "stopped" if state == "failed" else state

    @property
    def failed(self) -> bool:
        """Stopped by a failure (not by a stop call): `failure_reason` says what happened."""
        return self.state == "stopped" and bool(self.failure_reason)

    @field_validator("state_history", mode="before")
    @classmethod
    def _transitions_only(cls, history: Any) -> Any:
        # Upstream's history holds transitions only (from_state is a state); the creation is `create_time`.
        if isinstance(history, list):
            return [h for h in history if not (isinstance(h, dict) and h.get("from_state") is None)]
        return history


class SandboxIdRequest(SandboxRequest):
    """`POST /stop`, `/delete`, `/restart`: `{"sandbox_id"}`."""

    sandbox_id: str | None = None


class SandboxListResponse(WireModel):
    """`GET /sandboxes?state=&image=&user_id=&experiment_id=&namespace=&page=&page_size=`."""

    items: list[SandboxStatusResponse] = Field(default_factory=list)
    total: int = 0
    has_more: bool = False
