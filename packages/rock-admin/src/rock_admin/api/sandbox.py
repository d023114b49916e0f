"""`/apis/envs/sandbox/v1/*`: ROCK's sandbox API (lifecycle + data plane) in ROCK's envelope, plus additions:
`GET /sandboxes` (list with filters), binary files, `GET /download`, background processes, streaming."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from litestar import Request, Response, Router, delete, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Stream
from pydantic import BaseModel

from rock.actions import (
    SANDBOX_API_PREFIX,
    BashAction,
    BashInterruptAction,
    CloseBashSessionRequest,
    Command,
    CreateBashSessionRequest,
    KillProcessRequest,
    ReadFileBytesRequest,
    ReadFileRequest,
    SandboxIdRequest,
    SandboxListResponse,
    SandboxStartRequest,
    SandboxStartResponse,
    StartProcessRequest,
    WaitProcessRequest,
    WriteFileBytesRequest,
    WriteFileRequest,
)
from rock.rocklet_client import raise_for_response
from rock_admin.api.envelope import (
    ENVELOPE_RESPONSES,
    STREAM_RESPONSES,
    SUCCESS_HEAD,
    TOO_DEEP,
    StreamOperation,
    envelope,
    failed,
    from_exception,
    raw_body_operation,
    success,
)
from rock_admin.api.forwarding import data_plane, forward
from rock_admin.api.model_service import model_service_routes
from rock_admin.api.portforward import portforward
from rock_admin.api.rocklet_relay import rocklet_relay
from rock_admin.service.dataplane import DataPlane, Sandbox
from rock_admin.service.lifecycle import SandboxService, ServiceError
from rocklet.sessions.output import TRIM_OUTPUT_HEADER

#: `start` waits this long for the sandbox to answer (as upstream).
START_WAIT = 85.0


def _svc(request: Request[Any, Any, Any]) -> SandboxService:
    """Lifecycle (roles all/write; a read node forwards these calls before they get here)."""
    return request.app.state.sandboxes


def _strip(model: BaseModel) -> BaseModel:
    """The same request without `sandbox_id` (the rocklet does not need it)."""
    return model.model_copy(update={"sandbox_id": None})


def _start_response(sb: Any) -> SandboxStartResponse:
    rec = sb.record
    return SandboxStartResponse(
        code=2000,
        sandbox_id=sb.id,
        host_name=rec.get("host_name") or sb.id[:63],
        host_ip="127.0.0.1",
        cpus=rec.get("cpus"),
        memory=rec.get("memory"),
        disk=rec.get("disk"),
        failure_reason=rec.get("failure_reason"),
    )


@get("/", include_in_schema=True, sync_to_thread=False)
def hello() -> dict[str, str]:
    return {"message": "hello, ROCK!"}


# ---------------------------------------------------------------------------- lifecycle


@post("/start_async", status_code=200, responses=ENVELOPE_RESPONSES)
async def start_async(request: Request[Any, Any, Any], data: SandboxStartRequest) -> Response[bytes]:
    svc = _svc(request)
    sb = await svc.start(data, dict(request.headers))
    return success(_start_response(sb))


@post("/start", status_code=200, responses=ENVELOPE_RESPONSES)
async def start(request: Request[Any, Any, Any], data: SandboxStartRequest) -> Response[bytes]:
    """Start and wait (up to 85 s) until the sandbox answers; a failure says why."""
    svc = _svc(request)
    sb = await svc.start(data, dict(request.headers))
    await svc.wait_ready(sb, min(START_WAIT, sb.record["startup_timeout"] + 5))
    if sb.state == "failed":
        return failed(
            f"sandbox {sb.id} failed to start: {sb.record.get('failure_reason')}",
            5000,
            result=_start_response(sb).model_dump(),
        )
    if sb.state != "running":
        return failed(
            f"sandbox {sb.id} is not running yet (state: {sb.state})",
            5000,
            result=_start_response(sb).model_dump(),
        )
    return success(_start_response(sb))


@get("/is_alive", responses=ENVELOPE_RESPONSES)
async def is_alive(request: Request[Any, Any, Any], sandbox_id: str | None = None) -> Response[bytes]:
    return success(await data_plane(request).is_alive(sandbox_id))


@get("/get_status", responses=ENVELOPE_RESPONSES)
async def get_status(
    request: Request[Any, Any, Any], sandbox_id: str | None = None, include_all_states: bool = False
) -> Response[bytes]:
    svc = data_plane(request)
    sb = svc.get(sandbox_id)
    # Health by liveness, not by the pid: a frozen rocklet is not alive (and past health_timeout, failed).
    alive = sb.state == "running" and sb.handle is not None and await svc.probe(sb)
    status = svc.status(sb).model_copy(update={"is_alive": alive})
    if sb.state in ("pending", "running"):
        sb.record["last_activity_time"] = max(
            sb.record.get("last_activity_time", 0), sb.record.get("create_time", 0)
        )
    if not include_all_states and sb.state not in ("pending", "running") and not _failed_start(sb):
        why = f": {sb.record.get('failure_reason')}" if sb.state == "failed" else ""
        return failed(f"sandbox {sb.id} is {sb.state}{why}", 4000, result=status.model_dump(mode="json"))
    return success(status)


def _failed_start(sb: Sandbox) -> bool:
    """Failed before it ever ran: upstream's sandbox stays pending then, and its SDK's start() reads the failed
    phase from get_status ("Failed to start sandbox because image_pull: ...") rather than a not-found error."""
    history = sb.record.get("state_history") or [{}]
    return sb.state == "failed" and history[-1].get("from_state") == "pending"


@get("/sandboxes", responses=ENVELOPE_RESPONSES)
async def list_sandboxes(
    request: Request[Any, Any, Any],
    state_filter: str | None = Parameter(query="state", default=None),
    image: str | None = None,
    user_id: str | None = None,
    experiment_id: str | None = None,
    namespace: str | None = None,
    page: int = 1,
    page_size: int = 500,
) -> Response[bytes]:
    svc = data_plane(request)
    if page < 1 or page_size < 1 or page_size > 10000:
        return failed("page must be >= 1 and page_size in 1..10000")
    states = [s for s in state_filter.split(",") if s] if state_filter else None
    if states and "stopped" in states:
        states.append("failed")  # on the wire a failed sandbox is stopped (upstream's states)
    items = []
    for sb in svc.list(states):
        rec = sb.record
        if image and rec.get("image") != image:
            continue
        if user_id and rec.get("user_id") != user_id:
            continue
        if experiment_id and rec.get("experiment_id") != experiment_id:
            continue
        if namespace and rec.get("namespace") != namespace:
            continue
        items.append(sb)
    total = len(items)
    chunk = items[(page - 1) * page_size : page * page_size]
    return success(
        SandboxListResponse(
            items=[svc.status(sb) for sb in chunk], total=total, has_more=page * page_size < total
        )
    )


@post("/stop", status_code=200, responses=ENVELOPE_RESPONSES)
async def stop(request: Request[Any, Any, Any], data: SandboxIdRequest) -> Response[bytes]:
    sb = await _svc(request).stop(data.sandbox_id or "")
    return success(f"sandbox {sb.id} is {sb.state}")


@post("/delete", status_code=200, responses=ENVELOPE_RESPONSES)
async def delete_sandbox(request: Request[Any, Any, Any], data: SandboxIdRequest) -> Response[bytes]:
    if not data.sandbox_id:
        raise ServiceError("sandbox_id is required")
    sb = await _svc(request).delete(data.sandbox_id)
    return success(
        f"sandbox {data.sandbox_id} is deleted" if sb else f"sandbox {data.sandbox_id} does not exist"
    )


async def _restart(svc: SandboxService, sandbox_id: str | None) -> Response[bytes]:
    sb = await svc.restart(sandbox_id or "")
    return success(_start_response(sb))


@post("/restart", status_code=200, responses=ENVELOPE_RESPONSES)
async def restart(request: Request[Any, Any, Any], data: SandboxIdRequest) -> Response[bytes]:
    return await _restart(_svc(request), data.sandbox_id)


@post("/sandboxes/{sandbox_id:str}/restart", status_code=200, responses=ENVELOPE_RESPONSES)
async def restart_by_path(request: Request[Any, Any, Any], sandbox_id: str) -> Response[bytes]:
    return await _restart(_svc(request), sandbox_id)


@post("/sandboxes/{sandbox_id:str}/archive", status_code=200, responses=ENVELOPE_RESPONSES)
async def archive(sandbox_id: str) -> Response[bytes]:
    return failed(f"archive is not implemented yet (sandbox {sandbox_id})", 4000)


@post("/commit", status_code=200, responses=ENVELOPE_RESPONSES)
async def commit() -> Response[bytes]:
    return failed("commit is not implemented yet by the process runtime", 4000)


@get("/commit/{sandbox_id:str}", responses=ENVELOPE_RESPONSES)
async def commit_status(sandbox_id: str) -> Response[bytes]:
    # Upstream's get_commit_status reads an envelope; a bare 404 would surface as an HTTP error instead.
    return failed(f"commit is not implemented yet (sandbox {sandbox_id})", 4000)


# ---------------------------------------------------------------------------- data plane


@get("/get_sandbox_statistics", responses=ENVELOPE_RESPONSES)
async def statistics(request: Request[Any, Any, Any], sandbox_id: str | None = None) -> Response[bytes]:
    return await envelope(data_plane(request).call(sandbox_id, lambda c: c.get_statistics()), sandbox_id)


@post("/execute", status_code=200, responses=ENVELOPE_RESPONSES)
async def execute(request: Request[Any, Any, Any], data: Command) -> Response[bytes]:
    return await forward(request, data.sandbox_id, "/execute", timeout=data.timeout)


@post("/create_session", status_code=200, responses=ENVELOPE_RESPONSES)
async def create_session(request: Request[Any, Any, Any], data: CreateBashSessionRequest) -> Response[bytes]:
    return await forward(request, data.sandbox_id, "/create_session")


@post(
    "/run_in_session",
    status_code=200,
    responses=ENVELOPE_RESPONSES,
    operation_class=raw_body_operation(BashAction | BashInterruptAction),
)
async def run_in_session(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Body: a `BashAction` or `BashInterruptAction` plus `sandbox_id` (upstream's `SandboxBashAction`).

    The hot path: the body goes to the rocklet as is (it ignores `sandbox_id` and validates the rest) through
    the admin's lean keep-alive client, and the observation comes back unparsed inside the envelope."""
    raw = await request.body()
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
    except ValueError as exc:
        return failed("invalid parameter", 4000, error=f"body: {exc}")
    except RecursionError:
        return failed("invalid parameter", 4000, error=TOO_DEEP)
    sandbox_id = body.get("sandbox_id")
    try:
        payload = await data_plane(request).post_raw(
            sandbox_id, "/run_in_session", raw, _own_timeout(body), _TRIM_OUTPUT
        )
    except Exception as exc:
        return from_exception(exc, sandbox_id)
    if b'"exit_code":-1' in payload:
        obs = json.loads(payload)
        if obs.get("exit_code") == -1:
            return failed(obs.get("failure_reason") or "command failed", 6000, result=obs)
    return Response(SUCCESS_HEAD + payload + b"}", media_type="application/json", status_code=200)


# Upstream's admin answers with its rocklet's output, which that strips (`hi`, not SWE-ReX's `hi\n`).
_TRIM_OUTPUT = f"{TRIM_OUTPUT_HEADER}: 1\r\n".encode()


def _own_timeout(body: dict[str, Any]) -> float | None:
    """The command's own timeout (the admin's deadline on the call is that plus a margin)."""
    timeout = body.get("timeout")
    ok = isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0
    return float(timeout) if ok else None


@post("/close_session", status_code=200, responses=ENVELOPE_RESPONSES)
async def close_session(request: Request[Any, Any, Any], data: CloseBashSessionRequest) -> Response[bytes]:
    return await forward(request, data.sandbox_id, "/close_session")


@post("/read_file", status_code=200, responses=ENVELOPE_RESPONSES)
async def read_file(request: Request[Any, Any, Any], data: ReadFileRequest) -> Response[bytes]:
    return await forward(request, data.sandbox_id, "/read_file")


@post("/write_file", status_code=200, responses=ENVELOPE_RESPONSES)
async def write_file(request: Request[Any, Any, Any], data: WriteFileRequest) -> Response[bytes]:
    return await forward(request, data.sandbox_id, "/write_file")


@post("/read_file_bytes", status_code=200, responses=ENVELOPE_RESPONSES)
async def read_file_bytes(request: Request[Any, Any, Any], data: ReadFileBytesRequest) -> Response[bytes]:
    return await forward(request, data.sandbox_id, "/read_file_bytes")


@post("/write_file_bytes", status_code=200, responses=ENVELOPE_RESPONSES)
async def write_file_bytes(request: Request[Any, Any, Any], data: WriteFileBytesRequest) -> Response[bytes]:
    return await forward(request, data.sandbox_id, "/write_file_bytes")


@dataclass
class UploadForm:
    file: UploadFile
    target_path: str
    sandbox_id: str
    unzip: bool = False


@post("/upload", status_code=200, responses=ENVELOPE_RESPONSES)
async def upload(
    request: Request[Any, Any, Any],
    data: UploadForm = Body(media_type=RequestEncodingType.MULTI_PART),  # noqa: B008
) -> Response[bytes]:
    """Multipart `file`, `target_path`, `sandbox_id` (and `unzip`, an addition), forwarded to the rocklet."""
    from rock.actions import UploadResponse

    content = await data.file.read()

    async def forward(client: Any) -> UploadResponse:
        response = await client._http.post(
            "/upload",
            files={"file": (data.file.filename or "upload", content)},
            data={"target_path": data.target_path, "unzip": "true" if data.unzip else "false"},
        )
        raise_for_response(response)
        return UploadResponse.model_validate_json(response.content)

    return await envelope(data_plane(request).call(data.sandbox_id, forward), data.sandbox_id)


async def _stream(svc: DataPlane, sandbox_id: str | None, make_iter: Any, media_type: str) -> Response[Any]:
    """Stream from the rocklet; an error before the first byte becomes a Failed envelope."""
    try:
        _, client = svc.client_for(sandbox_id)
        iterator = make_iter(client).__aiter__()
        try:
            first = await iterator.__anext__()
        except StopAsyncIteration:
            first = b""
            iterator = None
    except Exception as exc:
        return from_exception(exc, sandbox_id)

    async def chunks() -> Any:
        if first:
            yield first
        if iterator is not None:
            async for chunk in iterator:
                yield chunk

    return Stream(chunks(), media_type=media_type, status_code=200)


@get("/download", responses=STREAM_RESPONSES, operation_class=StreamOperation)
async def download(request: Request[Any, Any, Any], sandbox_id: str, path: str) -> Response[Any]:
    """The file's bytes (a directory comes as .tar.gz); errors come as a Failed envelope."""
    return await _stream(
        data_plane(request), sandbox_id, lambda c: c.download_stream(path), "application/octet-stream"
    )


# ---------------------------------------------------------------------------- background processes


@post("/processes", status_code=200, responses=ENVELOPE_RESPONSES)
async def start_process(request: Request[Any, Any, Any], data: StartProcessRequest) -> Response[bytes]:
    return await envelope(
        data_plane(request).call(data.sandbox_id, lambda c: c.start_process(_strip(data))), data.sandbox_id
    )


@get("/processes", responses=ENVELOPE_RESPONSES)
async def list_processes(request: Request[Any, Any, Any], sandbox_id: str) -> Response[bytes]:
    async def go(c: Any) -> Any:
        return {"processes": [p.model_dump() for p in await c.list_processes()]}

    return await envelope(data_plane(request).call(sandbox_id, go), sandbox_id)


@get("/processes/{process_id:str}", responses=ENVELOPE_RESPONSES)
async def get_process(request: Request[Any, Any, Any], process_id: str, sandbox_id: str) -> Response[bytes]:
    return await envelope(
        data_plane(request).call(sandbox_id, lambda c: c.get_process(process_id)), sandbox_id
    )


@get("/processes/{process_id:str}/output", responses=ENVELOPE_RESPONSES)
async def process_output(
    request: Request[Any, Any, Any],
    process_id: str,
    sandbox_id: str,
    stdout_offset: int = 0,
    stderr_offset: int = 0,
    max_bytes: int | None = None,
) -> Response[bytes]:
    query = {"stdout_offset": stdout_offset, "stderr_offset": stderr_offset}
    if max_bytes is not None:
        query["max_bytes"] = max_bytes
    path = f"/processes/{quote(process_id, safe='')}/output?{urlencode(query)}"
    return await forward(request, sandbox_id, path, b"GET", b"")


@get("/processes/{process_id:str}/stream", responses=STREAM_RESPONSES, operation_class=StreamOperation)
async def stream_process(
    request: Request[Any, Any, Any], process_id: str, sandbox_id: str, stream: str = "stdout", offset: int = 0
) -> Response[Any]:
    return await _stream(
        data_plane(request),
        sandbox_id,
        lambda c: c.stream_process(process_id, stream, offset),
        "application/octet-stream",
    )


@post("/processes/{process_id:str}/wait", status_code=200, responses=ENVELOPE_RESPONSES)
async def wait_process(
    request: Request[Any, Any, Any], process_id: str, data: WaitProcessRequest
) -> Response[bytes]:
    return await envelope(
        data_plane(request).call(data.sandbox_id, lambda c: c.wait_process(process_id, data.timeout)),
        data.sandbox_id,
    )


@post("/processes/{process_id:str}/kill", status_code=200, responses=ENVELOPE_RESPONSES)
async def kill_process(
    request: Request[Any, Any, Any], process_id: str, data: KillProcessRequest
) -> Response[bytes]:
    return await envelope(
        data_plane(request).call(data.sandbox_id, lambda c: c.kill_process(process_id, data.signal)),
        data.sandbox_id,
    )


@delete("/processes/{process_id:str}", status_code=200, responses=ENVELOPE_RESPONSES)
async def remove_process(
    request: Request[Any, Any, Any], process_id: str, sandbox_id: str
) -> Response[bytes]:
    return await envelope(
        data_plane(request).call(sandbox_id, lambda c: c.remove_process(process_id)), sandbox_id
    )


sandbox_router = Router(
    path=SANDBOX_API_PREFIX,
    route_handlers=[
        start_async,
        start,
        is_alive,
        get_status,
        list_sandboxes,
        stop,
        delete_sandbox,
        restart,
        restart_by_path,
        archive,
        commit,
        commit_status,
        statistics,
        execute,
        create_session,
        run_in_session,
        close_session,
        read_file,
        write_file,
        read_file_bytes,
        write_file_bytes,
        upload,
        download,
        start_process,
        list_processes,
        get_process,
        process_output,
        stream_process,
        wait_process,
        kill_process,
        remove_process,
        portforward,
        rocklet_relay,
        *model_service_routes,
    ],
)

_ = asyncio
