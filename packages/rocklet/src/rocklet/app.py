"""The HTTP API: Litestar routes over one `Runtime`. Wire-compatible with the SWE-ReX/ROCK runtime API, plus
binary files, download, background processes, streaming, GEM envs, the model service and statistics."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Response, WebSocket, delete, get, post, websocket
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
from rocklet.runtime import Runtime
from rocklet.sessions.output import trims_output

_JSON = "application/json"
_ACTION: TypeAdapter[Any] = TypeAdapter(Action)
_HELLO = b'{"message":"hello world"}'


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


def _json_bytes(body: bytes) -> Response[bytes]:
    return Response(body, media_type=_JSON)


def create_app(config: RockletConfig | None = None) -> Any:
    """The ASGI app (Litestar, wrapped in the API-key check when `config.auth_token` is set)."""
    config = config or RockletConfig()
    rt = Runtime(config)

    async def body(request: Request[Any, Any, Any]) -> bytes:
        return await request.body()

    # --------------------------------------------------------------------- liveness

    @get("/", sync_to_thread=False)
    def root() -> Response[bytes]:
        return _json_bytes(_HELLO)

    @get("/is_alive")
    async def is_alive() -> Response[bytes]:
        return _ok(IsAliveResponse(is_alive=True))

    @get("/version")
    async def version() -> Response[bytes]:
        return _json_bytes(f'{{"version":"{__version__}"}}'.encode())

    @get("/get_statistics")
    async def get_statistics() -> Response[bytes]:
        return _ok(await rt.sampler.sample())

    @post("/close", status_code=200)
    async def close() -> Response[bytes]:
        await rt.close_all()
        return _ok(CloseResponse())

    # --------------------------------------------------------------------- sessions

    @post("/create_session", status_code=200)
    async def create_session(request: Request[Any, Any, Any]) -> Response[bytes]:
        req = CreateBashSessionRequest.model_validate_json(await body(request))
        return _ok(await rt.sessions.create(req))

    @post("/run_in_session", status_code=200)
    async def run_in_session(request: Request[Any, Any, Any]) -> Response[bytes]:
        action = _parse_action(await body(request))
        obs = await rt.sessions.run(action)
        if trims_output(request.headers):
            obs.output = obs.output.strip()
        return _ok(obs)

    @post("/close_session", status_code=200)
    async def close_session(request: Request[Any, Any, Any]) -> Response[bytes]:
        req = CloseBashSessionRequest.model_validate_json(await body(request))
        return _ok(await rt.sessions.close(req))

    # --------------------------------------------------------------------- commands

    @post("/execute", status_code=200)
    async def execute(request: Request[Any, Any, Any]) -> Response[bytes]:
        command = Command.model_validate_json(await body(request))
        return _ok(await commands.execute(command, max_output_bytes=config.max_output_bytes))

    # --------------------------------------------------------------------- files

    @post("/read_file", status_code=200)
    async def read_file(request: Request[Any, Any, Any]) -> Response[bytes]:
        req = ReadFileRequest.model_validate_json(await body(request))
        return _ok(await files.read_file(req, max_read_bytes=config.max_read_bytes))

    @post("/write_file", status_code=200)
    async def write_file(request: Request[Any, Any, Any]) -> Response[bytes]:
        req = WriteFileRequest.model_validate_json(await body(request))
        return _ok(await files.write_file(req))

    @post("/read_file_bytes", status_code=200)
    async def read_file_bytes(request: Request[Any, Any, Any]) -> Response[bytes]:
        req = ReadFileBytesRequest.model_validate_json(await body(request))
        return _ok(await files.read_file_bytes(req, max_read_bytes=config.max_read_bytes))

    @post("/write_file_bytes", status_code=200)
    async def write_file_bytes(request: Request[Any, Any, Any]) -> Response[bytes]:
        req = WriteFileBytesRequest.model_validate_json(await body(request))
        return _ok(await files.write_file_bytes(req))

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

    # --------------------------------------------------------------------- background processes

    @post("/processes", status_code=200)
    async def start_process(request: Request[Any, Any, Any]) -> Response[bytes]:
        req = StartProcessRequest.model_validate_json(await body(request))
        return _ok(await rt.processes.start(req))

    @get("/processes")
    async def list_processes() -> Response[bytes]:
        return _ok(ProcessListResponse(processes=rt.processes.list()))

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
        raw = await body(request)
        req = WaitProcessRequest.model_validate_json(raw) if raw.strip() else WaitProcessRequest()
        return _ok(await rt.processes.wait(process_id, req.timeout))

    @post("/processes/{process_id:str}/kill", status_code=200)
    async def kill_process(process_id: str, request: Request[Any, Any, Any]) -> Response[bytes]:
        raw = await body(request)
        req = KillProcessRequest.model_validate_json(raw) if raw.strip() else KillProcessRequest()
        return _ok(await rt.processes.kill(process_id, req.signal))

    @delete("/processes/{process_id:str}", status_code=200)
    async def remove_process(process_id: str) -> Response[bytes]:
        return _ok(await rt.processes.remove(process_id))

    # --------------------------------------------------------------------- GEM envs

    @post("/env/make", status_code=200)
    async def env_make(request: Request[Any, Any, Any]) -> Response[bytes]:
        return _ok(await rt.envs.make(EnvMakeRequest.model_validate_json(await body(request))))

    @post("/env/reset", status_code=200)
    async def env_reset(request: Request[Any, Any, Any]) -> Response[bytes]:
        return _ok(await rt.envs.reset(EnvResetRequest.model_validate_json(await body(request))))

    @post("/env/step", status_code=200)
    async def env_step(request: Request[Any, Any, Any]) -> Response[bytes]:
        return _ok(await rt.envs.step(EnvStepRequest.model_validate_json(await body(request))))

    @post("/env/close", status_code=200)
    async def env_close(request: Request[Any, Any, Any]) -> Response[bytes]:
        return _ok(await rt.envs.close(EnvCloseRequest.model_validate_json(await body(request))))

    @post("/env/list", status_code=200)
    async def env_list() -> Response[bytes]:
        return _ok(rt.envs.list())

    # --------------------------------------------------------------------- model service

    @post("/model_service/start", status_code=200)
    async def model_service_start(request: Request[Any, Any, Any]) -> Response[bytes]:
        raw = await body(request)
        config = ModelServiceConfig.model_validate_json(raw) if raw.strip() else ModelServiceConfig()
        return _ok(await rt.model_service.start(config))

    @post("/model_service/stop", status_code=200)
    async def model_service_stop() -> Response[bytes]:
        return _ok(await rt.model_service.stop())

    @get("/model_service/status")
    async def model_service_status() -> Response[bytes]:
        return _ok(rt.model_service.status())

    @post("/model_service/reset", status_code=200)
    async def model_service_reset() -> Response[bytes]:
        rt.model_service.reset()
        return _ok(rt.model_service.status())

    @post("/model_service/watch", status_code=200)
    async def model_service_watch(request: Request[Any, Any, Any]) -> Response[bytes]:
        return _ok(await rt.model_service.watch(WatchAgentRequest.model_validate_json(await body(request))))

    @post("/model_service/anti_call", status_code=200)
    async def model_service_anti_call(request: Request[Any, Any, Any]) -> Response[bytes]:
        return _ok(await rt.model_service.anti_call(AntiCallRequest.model_validate_json(await body(request))))

    @post("/model_service/answer", status_code=200)
    async def model_service_answer(request: Request[Any, Any, Any]) -> Response[bytes]:
        return _ok(rt.model_service.answer(AnswerRequest.model_validate_json(await body(request))))

    @websocket("/portforward")
    async def portforward(socket: WebSocket[Any, Any, Any]) -> None:
        """ROCK's TCP port forwarding: `?port=N` on 127.0.0.1, relayed as binary frames."""
        await serve_portforward(socket)

    async def on_shutdown() -> None:
        with contextlib.suppress(Exception):
            await rt.shutdown()

    app = Litestar(
        route_handlers=[
            root,
            is_alive,
            version,
            get_statistics,
            close,
            create_session,
            run_in_session,
            close_session,
            execute,
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
            process_stream,
            wait_process,
            kill_process,
            remove_process,
            env_make,
            env_reset,
            env_step,
            env_close,
            env_list,
            model_service_start,
            model_service_stop,
            model_service_status,
            model_service_reset,
            model_service_watch,
            model_service_anti_call,
            model_service_answer,
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
