"""`RockEnv`: upstream's synchronous GEM client over `{ROCK_BASE_URL}/apis/v1/envs/gem/*` (raw JSON).

env = rock.make("game:Sokoban-v0-easy")
observation, info = env.reset(seed=42)
observation, reward, terminated, truncated, info = env.step("\\\\boxed{up}")
env.close()
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from rock.actions import GEM_API_PREFIX, EnvResetResponse, EnvStepResponse
from rock.exceptions import RockError


class RockEnvError(RockError, RuntimeError):
    """The admin refused a GEM call; the message has its reason and the env's id."""


class RockEnv:
    def __init__(
        self,
        env_id: str,
        *,
        base_url: str | None = None,
        mode: str | None = None,
        api_key: str | None = None,
        timeout: float = 300.0,
        **kwargs: Any,
    ) -> None:
        self.env_id = env_id
        self.base_url = (base_url or os.environ.get("ROCK_BASE_URL") or "http://localhost:8080").rstrip("/")
        api_key = api_key or os.environ.get("ROCK_API_KEY")
        headers = {"X-API-Key": api_key} if api_key else {}
        self._client = httpx.Client(base_url=self.base_url + GEM_API_PREFIX, timeout=timeout, headers=headers)
        self._closed = False
        self.sandbox_id: str | None = None
        body: dict[str, Any] = {"env_id": env_id}
        if mode:
            body["mode"] = mode
        if kwargs:
            body["kwargs"] = kwargs
        self.sandbox_id = self._post("make", body)["sandbox_id"]

    def _post(self, op: str, body: dict[str, Any]) -> Any:
        try:
            response = self._client.post(f"/{op}", json=body)
        except httpx.HTTPError as exc:
            raise RockEnvError(
                f"GEM {op} ({self.env_id}, {self.sandbox_id}): cannot reach {self.base_url}: {exc}"
            ) from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise RockEnvError(f"GEM {op} ({self.env_id}, sandbox {self.sandbox_id}) failed: {detail}")
        return response.json()

    def reset(self, seed: int | None = None) -> tuple[Any, dict[str, Any]]:
        body: dict[str, Any] = {"sandbox_id": self.sandbox_id}
        if seed is not None:
            body["seed"] = seed
        result = EnvResetResponse.model_validate(self._post("reset", body))
        return result.observation, result.info

    def step(self, action: str) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        r = EnvStepResponse.model_validate(
            self._post("step", {"sandbox_id": self.sandbox_id, "action": action})
        )
        return r.observation, r.reward, r.terminated, r.truncated, r.info

    def close(self) -> None:
        """Close the env (and, in `sandbox` mode, stop its sandbox). Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._post("close", {"sandbox_id": self.sandbox_id})
        finally:
            self._client.close()

    def __enter__(self) -> RockEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make(env_id: str, **kwargs: Any) -> RockEnv:
    """Make a GEM env on the admin at `$ROCK_BASE_URL` (keywords: `base_url`, `mode`, `api_key`, env kwargs)."""
    return RockEnv(env_id, **kwargs)
