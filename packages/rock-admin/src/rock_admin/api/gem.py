"""`/apis/v1/envs/gem/{make,reset,step,close,list}`: the GEM API, raw JSON as upstream (no envelope).

Errors are HTTP 4xx/5xx with `{"detail": ...}`. `make` takes an optional `mode` (`sandbox` | `pooled`).
"""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, Response, Router, post
from litestar.openapi.datastructures import ResponseSpec
from pydantic import BaseModel

from rock.actions import GEM_API_PREFIX, EnvCloseRequest, EnvMakeRequest, EnvResetRequest, EnvStepRequest
from rock_admin.api.envelope import class_path, raw_body_operation
from rock_admin.errors import RockletTimeoutError
from rock_admin.service.gem import GemService
from rock_admin.service.lifecycle import SandboxNotFoundError, SandboxNotRunningError, ServiceError


class GemError(BaseModel):
    """A GEM error (HTTP 4xx): `{"detail"}`, plus `class_path` for a remote exception."""

    detail: Any
    class_path: str | None = None


#: The OpenAPI declaration of a GEM route: raw JSON with HTTP 200 (as upstream), errors `{"detail"}`.
GEM_RESPONSES = {
    200: ResponseSpec(dict[str, Any], description="the GEM reply, raw JSON (no envelope)"),
    400: ResponseSpec(GemError, description="a bad request (unknown env, bad action, ...)"),
    404: ResponseSpec(GemError, description="no such env, or its sandbox is not running"),
    504: ResponseSpec(GemError, description="the env's sandbox did not answer within the call's deadline"),
    422: ResponseSpec(GemError, description="the body does not validate"),
}


def _gem(request: Request[Any, Any, Any]) -> GemService:
    return request.app.state.gem


async def _reply(call: Any) -> Response[Any]:
    try:
        result = await call
    except (SandboxNotFoundError, SandboxNotRunningError) as exc:
        return Response({"detail": str(exc)}, status_code=404)
    except RockletTimeoutError as exc:
        return Response({"detail": str(exc)}, status_code=504)
    except ServiceError as exc:
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


@post("/make", status_code=200, responses=GEM_RESPONSES)
async def make(request: Request[Any, Any, Any], data: EnvMakeRequest) -> Response[Any]:
    return await _reply(_gem(request).make(data))


@post("/reset", status_code=200, responses=GEM_RESPONSES, operation_class=raw_body_operation(EnvResetRequest))
async def reset(request: Request[Any, Any, Any]) -> Response[Any]:
    """Body `{"sandbox_id", "seed"?}` (`EnvResetRequest`) → `{"observation", "info"}`."""
    return await _reply(_gem(request).forward_raw("reset", await request.body()))


@post("/step", status_code=200, responses=GEM_RESPONSES, operation_class=raw_body_operation(EnvStepRequest))
async def step(request: Request[Any, Any, Any]) -> Response[Any]:
    """Body `{"sandbox_id", "action"}` (`EnvStepRequest`) → `{"observation", "reward", "terminated",
    "truncated", "info"}`."""
    return await _reply(_gem(request).forward_raw("step", await request.body()))


@post("/close", status_code=200, responses=GEM_RESPONSES)
async def close(request: Request[Any, Any, Any], data: EnvCloseRequest) -> Response[Any]:
    return await _reply(_gem(request).close(data))


@post("/list", status_code=200, responses=GEM_RESPONSES)
async def list_envs(request: Request[Any, Any, Any], data: EnvCloseRequest) -> Response[Any]:
    return await _reply(_gem(request).list(data))


gem_router = Router(path=GEM_API_PREFIX, route_handlers=[make, reset, step, close, list_envs])
