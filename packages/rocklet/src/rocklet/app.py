"""The HTTP API: Litestar routes over one `LocalRuntime`. Wire-compatible with the SWE-ReX/ROCK runtime API, plus
binary files, download, background processes, streaming, GEM envs, the model service and statistics."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import shutil
import tempfile
from collections.abc import Callable
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar

from litestar import Litestar, Request, Response, WebSocket, delete, get, post, route, websocket
from litestar.datastructures import UploadFile
from litestar.response import Stream
from pydantic import BaseModel, TypeAdapter, ValidationError

from rock.actions import (
    Action,
    AnswerRequest,
    AntiCallRequest,
    BashAction,
    CloseBashSessionRequest,
    CloseResponse,
    Command,
    CreateBashSessionRequest,
    EnvCloseRequest,
    EnvMakeRequest,
    EnvResetRequest,
    EnvStepRequest,
    IsAliveResponse,
    KillProcessRequest,
    ModelServiceConfig,
    ProcessListResponse,
    ReadFileBytesRequest,
    ReadFileRequest,
    StartProcessRequest,
    WaitProcessRequest,
    WatchAgentRequest,
    WriteFileBytesRequest,
    WriteFileRequest,
)
from rocklet import __version__, commands, files
from rocklet.auth import ApiKeyMiddleware
from rocklet.config import RockletConfig
from rocklet.errors import handle_exception
from rocklet.portforward import serve as serve_portforward
from rocklet.replay import replay_middleware
from rocklet.runtime import LocalRuntime
from rocklet.sessions.output import trims_output

_JSON = "application/json"
_ACTION: TypeAdapter[Any] = TypeAdapter(Action)
_HELLO = b'{"message":"hello world"}'
_M = TypeVar("_M", bound=BaseModel)


def _parse_action(raw: bytes) -> Any:
    """An Action; a body without `action_type` is a bash action (upstream clients always send it)."""
    try:
        return _ACTION.validate_json(raw)
    except ValidationError as exc:
        if any(err["type"] == "union_tag_not_found" for err in exc.errors()):
            return BashAction.model_validate_json(raw)
        raise


def _ok(model: BaseModel) -> Response[bytes]:
    return Response(model.model_dump_json().encode(), media_type=_JSON)


def _optional(model: type[_M], raw: bytes) -> _M:
    """The body as `model`; an empty one is its defaults (the clients send none)."""
    return model.model_validate_json(raw) if raw.strip() else model()


def _late(rt: LocalRuntime, call: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(call):
        return call
    get_method = attrgetter(call)
    return lambda *args: get_method(rt)(*args)


def _table_route(method: str, path: str, body: type[BaseModel] | None, call: Callable[..., Any]) -> Any:
    """A route that parses its JSON body as `body` (None: takes none), passes it to `call` (a coroutine
    function or a plain one) and answers its model."""

    async def answer(result: Any) -> Response[bytes]:
        return _ok(await result if inspect.isawaitable(result) else result)

    if body is None:

        async def without_body() -> Response[bytes]:
            return await answer(call())

        handler = without_body
    else:

        async def with_body(request: Request[Any, Any, Any]) -> Response[bytes]:
            return await answer(call(body.model_validate_json(await request.body())))

        handler = with_body
    return route(path, http_method=method, status_code=200)(handler)


def _json_bytes(body: bytes) -> Response[bytes]:
    return Response(body, media_type=_JSON)


def create_app(config: RockletConfig | None = None) -> Any:
    """The ASGI app (Litestar, wrapped in the API-key check when `config.auth_token` is set)."""
    config = config or RockletConfig()
    rt = LocalRuntime(config)

    async def close() -> CloseResponse:
        await rt.close_all()
        return CloseResponse()

    def model_service_reset() -> Any:
        rt.model_service.reset()
        return rt.model_service.status()

    #: (method, path, body model or None, call): each parses its body, calls, answers the model. A call named by
    #: its path on the runtime is looked up per request (the zygote re-initialises the runtime in each sandbox).
    table: list[tuple[str, str, type[BaseModel] | None, str | Callable[..., Any]]] = [
        ("GET", "/is_alive", None, lambda: IsAliveResponse(is_alive=True)),
        ("GET", "/get_statistics", None, "sampler.sample"),
        ("POST", "/close", None, close),
        # sessions (run_in_session is its own route below)
        ("POST", "/create_session", CreateBashSessionRequest, "sessions.create"),
        ("POST", "/close_session", CloseBashSessionRequest, "sessions.close"),
        # commands and files
        (
            "POST",
            "/execute",
            Command,
            lambda c: commands.execute(c, max_output_bytes=config.max_output_bytes),
        ),
        (
            "POST",
            "/read_file",
            ReadFileRequest,
            lambda r: files.read_file(r, max_read_bytes=config.max_read_bytes),
        ),
        ("POST", "/write_file", WriteFileRequest, files.write_file),
        (
            "POST",
            "/read_file_bytes",
            ReadFileBytesRequest,
            lambda r: files.read_file_bytes(r, max_read_bytes=config.max_read_bytes),
        ),
        ("POST", "/write_file_bytes", WriteFileBytesRequest, files.write_file_bytes),
        # background processes (those of one process id are routes below)
        ("POST", "/processes", StartProcessRequest, "processes.start"),
        ("GET", "/processes", None, lambda: ProcessListResponse(processes=rt.processes.list())),
        # GEM envs
        ("POST", "/env/make", EnvMakeRequest, "envs.make"),
        ("POST", "/env/reset", EnvResetRequest, "envs.reset"),
        ("POST", "/env/step", EnvStepRequest, "envs.step"),
        ("POST", "/env/close", EnvCloseRequest, "envs.close"),
        ("POST", "/env/list", None, "envs.list"),
        # model service (start takes an optional body: its route is below)
        ("POST", "/model_service/stop", None, "model_service.stop"),
        ("GET", "/model_service/status", None, "model_service.status"),
        ("POST", "/model_service/reset", None, model_service_reset),
        ("POST", "/model_service/watch", WatchAgentRequest, "model_service.watch"),
        ("POST", "/model_service/anti_call", AntiCallRequest, "model_service.anti_call"),
        ("POST", "/model_service/answer", AnswerRequest, "model_service.answer"),
    ]

    @get("/", sync_to_thread=False)
    def root() -> Response[bytes]:
        return _json_bytes(_HELLO)

    @get("/version")
    async def version() -> Response[bytes]:
        return _json_bytes(f'{{"version":"{__version__}"}}'.encode())

    @post("/run_in_session", status_code=200)
    async def run_in_session(request: Request[Any, Any, Any]) -> Response[bytes]:
        obs = await rt.sessions.run(_parse_action(await request.body()))
        if trims_output(request.headers):
            obs.output = obs.output.strip()
        return _ok(obs)

    @post("/upload", status_code=200)
    async def upload(request: Request[Any, Any, Any]) -> Response[bytes]:
        form = await request.form()
        upload_file = form.get("file")
        target_path = form.get("target_path")
        if not isinstance(upload_file, UploadFile):
            raise ValueError("file: a multipart file part named 'file' is required")
        if not isinstance(target_path, str):
            raise ValueError("target_path: a form field 'target_path' is required")
        unzip = files.parse_bool(form.get("unzip", "false"), "unzip")
        fd, staged_name = tempfile.mkstemp(prefix="upload-", dir=rt.staging)
        staged = Path(staged_name)
        try:
            with os.fdopen(fd, "wb") as out:
                await asyncio.to_thread(shutil.copyfileobj, upload_file.file, out, 1 << 20)
            await upload_file.close()
            return _ok(await files.upload(staged, target_path, unzip, upload_file.filename))
        finally:
            staged.unlink(missing_ok=True)

    @get("/download")
    async def download(path: str) -> Stream:
        chunks, media_type, name = await files.download_stream(Path(path), rt.staging)
        return Stream(
            chunks,
            media_type=media_type,
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )

    @get("/processes/{process_id:str}")
    async def get_process(process_id: str) -> Response[bytes]:
        return _ok(rt.processes.get(process_id).info())

    @get("/processes/{process_id:str}/output")
    async def process_output(
        process_id: str, stdout_offset: int = 0, stderr_offset: int = 0, max_bytes: int | None = None
    ) -> Response[bytes]:
        return _ok(rt.processes.output(process_id, stdout_offset, stderr_offset, max_bytes))

    @get("/processes/{process_id:str}/stream")
    async def process_stream(process_id: str, stream: str = "stdout", offset: int = 0) -> Stream:
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"stream: must be 'stdout' or 'stderr', not {stream!r}")
        process = rt.processes.get(process_id)
        return Stream(process.stream(stream, offset), media_type="application/octet-stream")

    @post("/processes/{process_id:str}/wait", status_code=200)
    async def wait_process(process_id: str, request: Request[Any, Any, Any]) -> Response[bytes]:
        req = _optional(WaitProcessRequest, await request.body())
        return _ok(await rt.processes.wait(process_id, req.timeout))

    @post("/processes/{process_id:str}/kill", status_code=200)
    async def kill_process(process_id: str, request: Request[Any, Any, Any]) -> Response[bytes]:
        req = _optional(KillProcessRequest, await request.body())
        return _ok(await rt.processes.kill(process_id, req.signal))

    @delete("/processes/{process_id:str}", status_code=200)
    async def remove_process(process_id: str) -> Response[bytes]:
        return _ok(await rt.processes.remove(process_id))

    @post("/model_service/start", status_code=200)
    async def model_service_start(request: Request[Any, Any, Any]) -> Response[bytes]:
        return _ok(await rt.model_service.start(_optional(ModelServiceConfig, await request.body())))

    @websocket("/portforward")
    async def portforward(socket: WebSocket[Any, Any, Any]) -> None:
        """ROCK's TCP port forwarding: `?port=N` on 127.0.0.1, relayed as binary frames."""
        await serve_portforward(socket)

    async def on_shutdown() -> None:
        with contextlib.suppress(Exception):
            await rt.shutdown()

    app = Litestar(
        route_handlers=[
            *(_table_route(method, path, body, _late(rt, call)) for method, path, body, call in table),
            root,
            version,
            run_in_session,
            upload,
            download,
            get_process,
            process_output,
            process_stream,
            wait_process,
            kill_process,
            remove_process,
            model_service_start,
            portforward,
        ],
        exception_handlers={Exception: handle_exception},
        middleware=[replay_middleware(lambda: rt.replay)],
        on_shutdown=[on_shutdown],
        openapi_config=None,
        logging_config=None,
        request_max_body_size=config.max_body_bytes,
    )
    app.state.runtime = rt
    if config.auth_token:
        return ApiKeyMiddleware(app, config.auth_token)
    return app
