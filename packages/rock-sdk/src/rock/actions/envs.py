"""GEM environments hosted in the rocklet (`/env/make|reset|step|close|list`), keyed by `sandbox_id`.

Upstream keeps one env per sandbox and names it by the sandbox id; a rocklet here hosts several, one per
distinct `sandbox_id` (generated when omitted).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from rock.actions.base import SandboxRequest, WireModel


class EnvMakeRequest(SandboxRequest):
    env_id: str
    #: Keyword arguments for the env's constructor (on top of the registered preset).
    kwargs: dict[str, Any] = Field(default_factory=dict)
    #: Admin only (an addition): `sandbox` = one sandbox per env (upstream), `pooled` = many envs packed into
    #: shared sandboxes. None takes the server's default.
    mode: Literal["sandbox", "pooled"] | None = None


class EnvMakeResponse(WireModel):
    sandbox_id: str
    env_id: str = ""


class EnvResetRequest(SandboxRequest):
    seed: int | None = None


class EnvResetResponse(WireModel):
    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)
    observation: Any
    info: dict[str, Any] = Field(default_factory=dict)


class EnvStepRequest(SandboxRequest):
    action: str


class EnvStepResponse(WireModel):
    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)
    observation: Any
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any] = Field(default_factory=dict)


class EnvCloseRequest(SandboxRequest):
    pass


class EnvCloseResponse(WireModel):
    sandbox_id: str


class EnvListRequest(SandboxRequest):
    pass


class EnvListResponse(WireModel):
    """The registered env ids, and (an addition) the ids of the env instances alive in this rocklet."""

    env_id: list[str]
    instances: list[str] = Field(default_factory=list)
