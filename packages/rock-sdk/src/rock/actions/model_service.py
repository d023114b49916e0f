"""ModelService: the OpenAI-compatible endpoint an agent in the sandbox calls, and the trainer's side of it.

Upstream ROCK (`rock model-service`) passes every turn through a log file; ours keeps those markers (so the
file path still works) and adds a direct channel: the trainer asks the rocklet for the next parked request and
answers it, one round trip per turn.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from rock.actions.base import SandboxRequest, WireModel

#: What the file channel prints, and `anti_call_llm` returns, once the agent has exited (upstream's sentinel).
SESSION_END = "SESSION_END"
#: ROLL's agent-native runner puts the service here in the sandbox.
DEFAULT_PORT = 28080


class ModelServiceConfig(SandboxRequest):
    """`POST /model_service/start`. `type`: `local` parks each request until the trainer answers it; `proxy`
    forwards it to `proxy_base_url` (or `proxy_rules[model]`, then `proxy_rules["default"]`) and records it."""

    type: Literal["local", "proxy"] = "local"
    #: Port on the sandbox's 127.0.0.1; 0 takes a free one (the status says which).
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    #: Model names `/v1/models` lists and requests may name; a request naming another gets 404.
    models: list[str] = Field(default_factory=lambda: ["policy"])
    #: Seconds a parked request waits for the trainer before the agent gets HTTP 504.
    request_timeout: float = Field(default=600.0, gt=0)
    #: Parked requests at once; more get HTTP 429 (an agent that floods requests is bounded).
    max_pending: int = Field(default=64, ge=1)
    #: Largest request body an agent may send.
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    #: Key the agent must send as `Authorization: Bearer <key>` (empty: any, since only the sandbox reaches it).
    api_key: str = ""
    #: Where `LLMService.log` (upstream's request/response markers) is written; empty: the rocklet's state dir.
    log_dir: str = ""
    proxy_base_url: str | None = None
    proxy_rules: dict[str, str] = Field(default_factory=dict)
    retryable_status_codes: list[int] = Field(default_factory=lambda: [429, 500])
    #: Attempts in all for a retryable proxy reply, 2 s apart at first and doubling (as upstream).
    proxy_attempts: int = Field(default=6, ge=1)
    proxy_retry_backoff: float = Field(default=2.0, ge=0)
    proxy_timeout: float = Field(default=120.0, gt=0)
    #: JSON-lines file each proxied turn is appended to (`{"request", "response", "status"}`); empty: none.
    recording_file: str = ""

    @model_validator(mode="after")
    def _check(self) -> ModelServiceConfig:
        if self.type == "proxy" and not (self.proxy_base_url or self.proxy_rules):
            raise ValueError("proxy_base_url: proxy mode needs proxy_base_url or proxy_rules")
        for name, url in [("proxy_base_url", self.proxy_base_url), *self.proxy_rules.items()]:
            if url is not None and not url.startswith(("http://", "https://")):
                raise ValueError(f"{name}: expected an http(s):// URL, got {url!r}")
        if not self.models:
            raise ValueError("models: name at least one model")
        return self


class ModelServiceStatus(WireModel):
    running: bool = False
    type: str | None = None
    port: int | None = None
    #: What the agent's `OPENAI_BASE_URL` should be.
    base_url: str | None = None
    models: list[str] = Field(default_factory=list)
    #: Requests received this episode (the last index), and those still waiting for an answer.
    requests: int = 0
    pending: list[int] = Field(default_factory=list)
    session_ended: bool = False
    #: The watched agent's exit code once it has ended (None while it runs, or when it was not our child).
    agent_exit_code: int | None = None
    log_file: str | None = None
    #: The sandbox's interpreter that runs the rocklet: it can run `-m rocklet.model_service` and `rock.agents`.
    python: str | None = None


class WatchAgentRequest(SandboxRequest):
    """`POST /model_service/watch`: the session ends when this process exits. `process_id` (a background
    process the rocklet started) also gives its exit code; a bare `pid` is watched by polling."""

    pid: int | None = None
    process_id: str | None = None

    @model_validator(mode="after")
    def _one(self) -> WatchAgentRequest:
        if (self.pid is None) == (self.process_id is None):
            raise ValueError("pid: give exactly one of pid and process_id")
        return self


class AntiCallRequest(SandboxRequest):
    """`POST /model_service/anti_call`: answer request `index` with `response_payload` (when both are set),
    then wait up to `timeout` s for request `index + 1`. `index` 0 just waits for the first request."""

    index: int = Field(default=0, ge=0)
    response_payload: dict[str, Any] | None = None
    timeout: float = Field(default=600.0, gt=0)


class ModelTurn(WireModel):
    """One intercepted request, or why there is none: the agent exited (`session_end`) or nothing came in
    `timeout` s (`timed_out`; ask again)."""

    index: int = 0
    request: dict[str, Any] | None = None
    session_end: bool = False
    exit_code: int | None = None
    timed_out: bool = False


class AnswerRequest(SandboxRequest):
    """`POST /model_service/answer`: answer request `index` without waiting for the next."""

    index: int = Field(ge=1)
    response_payload: dict[str, Any]
