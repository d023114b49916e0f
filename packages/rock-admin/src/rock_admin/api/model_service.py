"""`/apis/envs/sandbox/v1/model_service/*`: a sandbox's model service (start, stop, status, watch the agent,
reset the episode) and the trainer's direct channel to it (`anti_call`: answer request N, get request N + 1 in
the same round trip; `answer`). Bodies carry `sandbox_id` and go to the rocklet as they are."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post

from rock.actions import (
    AnswerRequest,
    AntiCallRequest,
    ModelServiceConfig,
    SandboxIdRequest,
    WatchAgentRequest,
)
from rock_admin.api.envelope import ENVELOPE_RESPONSES
from rock_admin.api.forwarding import forward

PATH = "/model_service"


@post(f"{PATH}/start", status_code=200, responses=ENVELOPE_RESPONSES)
async def start(request: Request[Any, Any, Any], data: ModelServiceConfig) -> Response[bytes]:
    return await forward(request, data.sandbox_id, f"{PATH}/start")


@post(f"{PATH}/stop", status_code=200, responses=ENVELOPE_RESPONSES)
async def stop(request: Request[Any, Any, Any], data: SandboxIdRequest) -> Response[bytes]:
    return await forward(request, data.sandbox_id, f"{PATH}/stop", body=b"")


@post(f"{PATH}/reset", status_code=200, responses=ENVELOPE_RESPONSES)
async def reset(request: Request[Any, Any, Any], data: SandboxIdRequest) -> Response[bytes]:
    return await forward(request, data.sandbox_id, f"{PATH}/reset", body=b"")


@get(f"{PATH}/status", responses=ENVELOPE_RESPONSES)
async def status(request: Request[Any, Any, Any], sandbox_id: str) -> Response[bytes]:
    return await forward(request, sandbox_id, f"{PATH}/status", b"GET", b"")


@post(f"{PATH}/watch", status_code=200, responses=ENVELOPE_RESPONSES)
async def watch(request: Request[Any, Any, Any], data: WatchAgentRequest) -> Response[bytes]:
    return await forward(request, data.sandbox_id, f"{PATH}/watch")


@post(f"{PATH}/anti_call", status_code=200, responses=ENVELOPE_RESPONSES)
async def anti_call(request: Request[Any, Any, Any], data: AntiCallRequest) -> Response[bytes]:
    """Long-polls for up to `timeout` s: the admin's deadline on the call is that plus its margin."""
    return await forward(request, data.sandbox_id, f"{PATH}/anti_call", timeout=data.timeout)


@post(f"{PATH}/answer", status_code=200, responses=ENVELOPE_RESPONSES)
async def answer(request: Request[Any, Any, Any], data: AnswerRequest) -> Response[bytes]:
    return await forward(request, data.sandbox_id, f"{PATH}/answer")


model_service_routes = [start, stop, reset, status, watch, anti_call, answer]
