"""GEM environments hosted in the rocklet (the optional `rocklet[gem]` extra), several per rocklet by id."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from rock.actions import (
    EnvCloseRequest,
    EnvCloseResponse,
    EnvListResponse,
    EnvMakeRequest,
    EnvMakeResponse,
    EnvResetRequest,
    EnvResetResponse,
    EnvStepRequest,
    EnvStepResponse,
)
from rock.exceptions import EnvDoesNotExistError, FeatureNotAvailableError


def _gem() -> Any:
    try:
        import gem_envs
    except ImportError as exc:
        raise FeatureNotAvailableError(
            f"GEM env hosting needs the gem-envs package, which this rocklet lacks ({exc}); "
            "install it with: pip install 'rocklet[gem]'"
        ) from None
    return gem_envs


class _Hosted:
    def __init__(self, env_id: str, env: Any) -> None:
        self.env_id, self.env = env_id, env
        self.lock = asyncio.Lock()  # one call at a time per instance; instances run in parallel threads


class EnvHost:
    def __init__(self) -> None:
        self._envs: dict[str, _Hosted] = {}

    def _get(self, sandbox_id: str | None) -> tuple[str, _Hosted]:
        if sandbox_id is None:
            if len(self._envs) == 1:
                return next(iter(self._envs.items()))
            raise EnvDoesNotExistError(
                f"sandbox_id is required: this rocklet hosts {len(self._envs)} envs ({', '.join(self._envs) or 'none'})"
            )
        try:
            return sandbox_id, self._envs[sandbox_id]
        except KeyError:
            raise EnvDoesNotExistError(
                f"no env with sandbox_id {sandbox_id!r}; call /env/make first"
            ) from None

    async def make(self, request: EnvMakeRequest) -> EnvMakeResponse:
        gem = _gem()
        env = await asyncio.to_thread(gem.make, request.env_id, **request.kwargs)
        key = request.sandbox_id or uuid.uuid4().hex
        old = self._envs.pop(key, None)
        self._envs[key] = _Hosted(request.env_id, env)
        if old is not None:
            await asyncio.to_thread(old.env.close)
        return EnvMakeResponse(sandbox_id=key, env_id=request.env_id)

    async def reset(self, request: EnvResetRequest) -> EnvResetResponse:
        _, hosted = self._get(request.sandbox_id)
        async with hosted.lock:
            observation, info = await asyncio.to_thread(hosted.env.reset, seed=request.seed)
        return EnvResetResponse(observation=observation, info=info)

    async def step(self, request: EnvStepRequest) -> EnvStepResponse:
        _, hosted = self._get(request.sandbox_id)
        async with hosted.lock:
            observation, reward, terminated, truncated, info = await asyncio.to_thread(
                hosted.env.step, request.action
            )
        return EnvStepResponse(
            observation=observation,
            reward=float(reward),
            terminated=terminated,
            truncated=truncated,
            info=info,
        )

    async def close(self, request: EnvCloseRequest) -> EnvCloseResponse:
        key, hosted = self._get(request.sandbox_id)
        del self._envs[key]
        async with hosted.lock:
            await asyncio.to_thread(hosted.env.close)
        return EnvCloseResponse(sandbox_id=key)

    def list(self) -> EnvListResponse:
        return EnvListResponse(env_id=list(_gem().list_envs()), instances=list(self._envs))

    async def close_all(self) -> None:
        envs, self._envs = list(self._envs.values()), {}
        for hosted in envs:
            await asyncio.to_thread(hosted.env.close)
