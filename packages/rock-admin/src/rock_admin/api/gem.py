"""`/apis/v1/envs/gem/{make,reset,step,close,list}`: the GEM API, raw JSON as upstream (no envelope).

Errors are HTTP 4xx/5xx with `{"detail": ...}`. `make` takes an optional `mode` (`sandbox` | `pooled`).
"""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, Response, Router, post
from pydantic import BaseModel

from rock.actions import EnvCloseRequest, EnvMakeRequest
from rock_admin.api.envelope import class_path
from rock_admin.service.gem import GemService
from rock_admin.service.lifecycle import SandboxError, SandboxNotFoundError, SandboxNotRunningError

PREFIX = "/apis/v1/envs/gem"


def _gem(request: Request[Any, Any, Any]) -> GemService:
    return request.app.state.gem


async def _reply(call: Any) -> Response[Any]:
    try:
        result = await call
    except (SandboxNotFoundError, SandboxNotRunningError) as exc:
        return Response({"detail": str(exc)}, status_code=404)
    except SandboxError as exc:
        return Response({"detail": str(exc)}, status_code=400 if exc.code == 4000 else 500)
    except (ValueError, LookupError, RuntimeError, OSError) as exc:
        return Response(
            {"detail": f"{type(exc).__name__}: {exc}", "class_path": class_path(exc)}, status_code=400
        )
    except Exception as exc:
        return Response({"detail": f"{type(exc).__name__}: {exc}"}, status_code=500)
    if isinstance(result, BaseModel):
        body = result.model_dump_json().encode()
    elif isinstance(result, bytes):
        body = result
    else:
        body = json.dumps(result).encode()
    return Response(body, media_type="application/json", status_code=200)


@post("/make")
async def make(request: Request[Any, Any, Any], data: EnvMakeRequest) -> Response[Any]:
    return await _reply(_gem(request).make(data))


@post("/reset")
async def reset(request: Request[Any, Any, Any]) -> Response[Any]:
    """Body `{"sandbox_id", "seed"?}` (`EnvResetRequest`) → `{"observation", "info"}`."""
    return await _reply(_gem(request).forward_raw("reset", await request.body()))


@post("/step")
async def step(request: Request[Any, Any, Any]) -> Response[Any]:
    """Body `{"sandbox_id", "action"}` (`EnvStepRequest`) → `{"observation", "reward", "terminated",
    "truncated", "info"}`."""
    return await _reply(_gem(request).forward_raw("step", await request.body()))


@post("/close")
async def close(request: Request[Any, Any, Any], data: EnvCloseRequest) -> Response[Any]:
    return await _reply(_gem(request).close(data))


@post("/list")
async def list_envs(request: Request[Any, Any, Any], data: EnvCloseRequest) -> Response[Any]:
    return await _reply(_gem(request).list(data))


gem_router = Router(path=PREFIX, route_handlers=[make, reset, step, close, list_envs])
