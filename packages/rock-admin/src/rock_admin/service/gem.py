"""GEM hosting: `sandbox` mode (upstream: one sandbox per env, the env keyed by the sandbox id) and `pooled`
mode (many envs packed into shared sandboxes; the env id is `<pool sandbox id>/<env key>`)."""

from __future__ import annotations

import asyncio
import json
import uuid

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
    SandboxStartRequest,
)
from rock_admin.config import AdminConfig
from rock_admin.service import tenancy
from rock_admin.service.dataplane import DataPlane
from rock_admin.service.lifecycle import SandboxService, ServiceError

POOL_SEPARATOR = "/"


class GemService:
    """`make`/`close` start and stop sandboxes (the write side: `sandboxes`); `reset`/`step`/`list` only
    reach rocklets (`data`), so a read node, which has no `sandboxes`, serves them too."""

    def __init__(self, data: DataPlane, sandboxes: SandboxService | None = None) -> None:
        self.data = data
        self._sandboxes = sandboxes
        self._pools: dict[str, int] = {}  # pool sandbox id → envs in it
        self._pool_lock = asyncio.Lock()

    @property
    def sandboxes(self) -> SandboxService:
        if self._sandboxes is None:  # a read node forwards make/close to the write node before this
            raise ServiceError("GEM make/close are lifecycle calls: send them to a write node", 5000)
        return self._sandboxes

    @property
    def config(self) -> AdminConfig:
        return self.sandboxes.config

    async def _new_sandbox(self, auto_clear_seconds: float | None = None) -> str:
        req = SandboxStartRequest(
            image=self.config.gem_image, memory="2g", cpus=1, auto_clear_seconds=auto_clear_seconds
        )
        sb = await self.sandboxes.start(req)
        await self.sandboxes.wait_ready(sb, sb.record["startup_timeout"])
        if sb.state != "running":
            raise ServiceError(
                f"GEM sandbox {sb.id} did not start ({sb.state}): {sb.record.get('failure_reason') or 'unknown'}",
                5000,
            )
        return sb.id

    async def _pool_sandbox(self) -> str:
        async with self._pool_lock:
            for sid, count in self._pools.items():
                sb = self.sandboxes.sandboxes.get(sid)
                # a pool holds one caller's envs only (another caller's sandbox does not exist for them)
                if sb is None or sb.record.get("owner") != tenancy.owner_of_new():
                    continue
                if sb.state == "running" and count < self.config.gem_pool_size:
                    self._pools[sid] = count + 1
                    return sid
            sid = await self._new_sandbox(auto_clear_seconds=self.config.auto_clear_seconds)
            self._pools[sid] = 1
            return sid

    @staticmethod
    def _route(env_handle: str | None) -> tuple[str | None, str | None]:
        """(sandbox id, env key inside the rocklet)."""
        if env_handle and POOL_SEPARATOR in env_handle:
            sid = env_handle.rpartition(POOL_SEPARATOR)[0]
            return sid, env_handle
        return env_handle, env_handle

    async def make(self, request: EnvMakeRequest) -> EnvMakeResponse:
        mode = request.mode or self.config.gem_mode
        if mode == "pooled":
            sid = await self._pool_sandbox()
            key = f"{sid}{POOL_SEPARATOR}{uuid.uuid4().hex[:12]}"
        else:
            sid = await self._new_sandbox()
            key = sid
        try:
            await self.data.call(
                sid,
                lambda c: c.env_make(
                    EnvMakeRequest(env_id=request.env_id, kwargs=request.kwargs, sandbox_id=key)
                ),
            )
        except Exception:
            if mode == "pooled":
                self._pools[sid] = max(0, self._pools.get(sid, 1) - 1)
            else:
                await self.sandboxes.stop(sid, "GEM make failed")
            raise
        return EnvMakeResponse(sandbox_id=key, env_id=request.env_id)

    async def reset(self, request: EnvResetRequest) -> EnvResetResponse:
        sid, key = self._route(request.sandbox_id)
        return await self.data.call(
            sid, lambda c: c.env_reset(EnvResetRequest(sandbox_id=key, seed=request.seed))
        )

    async def step(self, request: EnvStepRequest) -> EnvStepResponse:
        sid, key = self._route(request.sandbox_id)
        return await self.data.call(
            sid, lambda c: c.env_step(EnvStepRequest(sandbox_id=key, action=request.action))
        )

    async def forward_raw(self, op: str, raw: bytes) -> bytes:
        """reset/step on the hot path: the body goes to the rocklet as is (the env handle is also the
        rocklet's key in both modes) and its reply comes back unparsed."""
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ServiceError(f"invalid JSON body: {exc}") from None
        except RecursionError:
            raise ServiceError("body: the JSON nests too deeply") from None
        handle = body.get("sandbox_id") if isinstance(body, dict) else None
        if not isinstance(handle, str) or not handle:
            raise ServiceError("sandbox_id is required (the id `make` returned)")
        if op == "step" and not isinstance(body.get("action"), str):
            raise ServiceError("action: a string is required")
        sid, _ = self._route(handle)
        return await self.data.post_raw(sid, f"/env/{op}", raw)

    async def close(self, request: EnvCloseRequest) -> EnvCloseResponse:
        sid, key = self._route(request.sandbox_id)
        if key and POOL_SEPARATOR in key:
            await self.data.call(sid, lambda c: c.env_close(EnvCloseRequest(sandbox_id=key)))
            if sid in self._pools:
                self._pools[sid] = max(0, self._pools[sid] - 1)
        else:
            sb = self.sandboxes.get(sid)
            if sb.state == "running":
                await self.data.call(sid, lambda c: c.env_close(EnvCloseRequest(sandbox_id=key)))
            await self.sandboxes.stop(sb.id, "GEM env closed")
        return EnvCloseResponse(sandbox_id=request.sandbox_id or "")

    async def list(self, request: EnvCloseRequest) -> EnvListResponse:
        if request.sandbox_id:
            sid, _ = self._route(request.sandbox_id)
            return await self.data.call(sid, lambda c: c.env_list())
        import gem_envs

        return EnvListResponse(env_id=list(gem_envs.list_envs()))
