"""`SandboxConfig` and friends, with upstream's field names and defaults (`rock.sdk.sandbox.config`)."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field, model_validator


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def default_base_url() -> str:
    return _env("ROCK_BASE_URL", "http://localhost:8080")


class BaseConfig(BaseModel):
    """Where the admin is and what to send it. `api_key` (an addition; default `$ROCK_API_KEY`) goes out as
    `X-API-Key`; `xrl_authorization` (deprecated upstream) as `XRL-Authorization: Bearer ...`."""

    base_url: str = Field(default_factory=default_base_url)
    xrl_authorization: str | None = None
    extra_headers: dict[str, str] = Field(default_factory=dict)
    api_key: str | None = Field(default_factory=lambda: os.environ.get("ROCK_API_KEY") or None)
    #: Addition: where lifecycle calls (start, stop, delete, restart) go; default `base_url`.
    write_url: str | None = None
    #: Addition: read nodes for data-plane calls (commands, sessions, files, status); default `base_url`.
    #: Each sandbox starts at a random one and moves to the next when one cannot be reached.
    read_urls: list[str] = Field(default_factory=list)
    #: Addition: a call whose connection is lost before the reply (or that a proxy answers 502/503/504) is sent
    #: again with the same `X-Request-ID` this many times, `retry_backoff` s apart at first and doubling; the
    #: rocklet answers a repeat from its replay cache, so a command never runs twice.
    request_retries: int = Field(default=3, ge=0)
    retry_backoff: float = Field(default=0.1, ge=0)

    @model_validator(mode="after")
    def _check_urls(self) -> BaseConfig:
        for name, url in [("base_url", self.base_url), ("write_url", self.write_url)] + [
            (f"read_urls[{i}]", u) for i, u in enumerate(self.read_urls)
        ]:
            if url is not None and not url.startswith(("http://", "https://")):
                raise ValueError(f"{name}: expected an http(s):// URL, got {url!r}")
        return self


class SandboxConfig(BaseConfig):
    image: str = "python:3.11"
    image_os: str = "linux"
    auto_clear_seconds: int = 300
    startup_timeout: float = Field(
        default_factory=lambda: float(_env("ROCK_SANDBOX_STARTUP_TIMEOUT_SECONDS", "180"))
    )
    memory: str = "8g"
    cpus: float = 2
    limit_cpus: float | None = None
    num_gpus: int | None = None
    accelerator_type: str | None = None
    user_id: str | None = None
    experiment_id: str | None = None
    cluster: str = Field(default_factory=lambda: _env("ROCK_DEFAULT_CLUSTER", "vpc-nt-a"))
    namespace: str | None = None
    registry_username: str | None = None
    registry_password: str | None = None
    use_kata_runtime: bool = False
    sandbox_id: str | None = None
    auto_archive_seconds: int | None = None
    auto_delete_seconds: int | None = None
    disk: str = "50G"
    #: Addition: environment variables for the sandbox's sessions and commands.
    env: dict[str, str] | None = None

    @model_validator(mode="after")
    def _check(self) -> SandboxConfig:
        for name in ("auto_archive_seconds", "auto_delete_seconds"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.auto_archive_seconds is not None and self.auto_delete_seconds is not None:
            raise ValueError("auto_archive_seconds and auto_delete_seconds cannot be set together")
        return self


class SandboxGroupConfig(SandboxConfig):
    size: int = 2
    start_concurrency: int = 2
    start_retry_times: int = 3
