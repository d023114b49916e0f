"""`Sandbox`: an async client for one sandbox of a ROCK admin (upstream's names and parameters).

    config = SandboxConfig(image="python:3.11", memory="8g", cpus=2.0)
    sandbox = Sandbox(config)
    await sandbox.start()
    await sandbox.create_session(CreateBashSessionRequest(session="bash-1"))
    result = await sandbox.arun(cmd="echo Hello Rock", session="bash-1")
    await sandbox.stop()

Every call goes to `{base_url}/apis/envs/sandbox/v1/<op>` and expects ROCK's envelope; with `write_url` and
`read_urls` set, lifecycle calls go to the write node and the rest to a read node (the next one when one cannot
be reached), skipping the hop a single URL costs. A `Failed` envelope
raises: the remote exception's own class when the admin names one (`NonZeroExitCodeError`,
`FileNotFoundError`, ...), else `SandboxRequestError`; the message says what failed and on which sandbox.
How calls reach the admin (nodes, headers, retries, the envelope) is `transport.py`; the errors are
`errors.py` (re-exported here, as upstream's names live in this module).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shlex
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel

from rock.actions import (
    BashAction,
    BashInterruptAction,
    BashObservation,
    CloseBashSessionRequest,
    CloseBashSessionResponse,
    Command,
    CommandResponse,
    CreateBashSessionRequest,
    CreateBashSessionResponse,
    IsAliveResponse,
    ProcessInfo,
    ProcessOutputResponse,
    ReadFileBytesRequest,
    ReadFileBytesResponse,
    ReadFileRequest,
    ReadFileResponse,
    SandboxStartResponse,
    SandboxStatusResponse,
    StartProcessRequest,
    StatisticsResponse,
    UploadRequest,
    UploadResponse,
    WriteFileBytesRequest,
    WriteFileBytesResponse,
    WriteFileRequest,
    WriteFileResponse,
)
from rock.sdk.sandbox.agent import Agent
from rock.sdk.sandbox.config import SandboxConfig, SandboxGroupConfig
from rock.sdk.sandbox.errors import (
    SandboxError,
    SandboxRequestError,
    SandboxStartError,
    SandboxUnreachableError,
)
from rock.sdk.sandbox.fs import LinuxFileSystem
from rock.sdk.sandbox.network import Network
from rock.sdk.sandbox.process import Process
from rock.sdk.sandbox.transport import AdminTransport, raise_failed, unreachable
from rock.upload import upload_source

M = TypeVar("M", bound=BaseModel)
RunMode = Literal["normal", "nohup"]


class Sandbox:
    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._sandbox_id: str | None = self.config.sandbox_id
        self._host_name: str | None = None
        self._host_ip: str | None = None
        self._transport = AdminTransport(self.config)
        self.runtime_envs: dict[str, Any] = {}
        self.fs = LinuxFileSystem(self)
        self.network = Network(self)
        self.process = Process(self)
        self.agent = Agent(self)

    # ------------------------------------------------------------------ properties

    @property
    def sandbox_id(self) -> str | None:
        return self._sandbox_id

    @property
    def host_name(self) -> str | None:
        return self._host_name

    @property
    def host_ip(self) -> str | None:
        return self._host_ip

    @property
    def cluster(self) -> str:
        return self.config.cluster

    @property
    def url(self) -> str:
        """`{base}/apis/envs/sandbox/v1` of the read node data-plane calls go to now."""
        return self._transport.url

    @url.setter
    def url(self, value: str) -> None:
        """Point data-plane calls elsewhere (read/write separation on the client, as upstream); lifecycle
        calls follow too unless `write_url` is set."""
        self._transport.url = value

    @property
    def http(self) -> httpx.AsyncClient:
        return self._transport.http

    # ------------------------------------------------------------------ plumbing

    def _headers(self) -> dict[str, str]:
        return self._transport.headers()

    async def _request(self, method: str, op: str, **kw: Any) -> Any:
        return await self._transport.request(method, op, self._sandbox_id, **kw)

    def _raise(self, op: str, body: dict[str, Any]) -> None:
        raise_failed(op, body, self._sandbox_id)

    async def _post(self, op: str, payload: BaseModel | dict[str, Any], out: type[M], **kw: Any) -> M:
        data = payload.model_dump(exclude_none=False) if isinstance(payload, BaseModel) else dict(payload)
        data["sandbox_id"] = self._sandbox_id
        return out.model_validate(await self._request("POST", op, json=data, **kw))

    def _need_id(self) -> str:
        if not self._sandbox_id:
            raise SandboxError("the sandbox has no id yet: call start() or attach() first")
        return self._sandbox_id

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> SandboxStartResponse:
        """Ask for the sandbox, then poll its status (fast at first, at most every 0.2 s) until it is alive.
        A failed or timed-out start raises `SandboxStartError` with the admin's reason."""
        c = self.config
        body = {
            "image": c.image,
            "image_os": c.image_os,
            "auto_clear_time": math.ceil(c.auto_clear_seconds / 60),
            "auto_clear_time_minutes": math.ceil(c.auto_clear_seconds / 60),
            "auto_clear_seconds": c.auto_clear_seconds,
            "startup_timeout": c.startup_timeout,
            "memory": c.memory,
            "cpus": c.cpus,
            "num_gpus": c.num_gpus,
            "accelerator_type": c.accelerator_type,
            "registry_username": c.registry_username,
            "registry_password": c.registry_password,
            "use_kata_runtime": c.use_kata_runtime,
            "limit_cpus": c.limit_cpus,
            "sandbox_id": c.sandbox_id,
            "auto_archive_seconds": c.auto_archive_seconds,
            "auto_delete_seconds": c.auto_delete_seconds,
            "disk": c.disk,
            "env": c.env,
        }
        # `start` answers once the sandbox is alive or has failed (no polling, no fixed sleeps); a start that
        # outlasts the server's wait (85 s) goes on below by polling the status.
        base = self._transport.base("start")
        try:
            response = await self.http.post(f"{base}/start", json=body)
        except httpx.HTTPError as exc:
            raise unreachable("start", base, exc, None) from exc
        try:
            payload = response.json()
        except ValueError as exc:
            raise SandboxStartError(
                f"start: the admin at {base} answered HTTP {response.status_code} "
                f"without JSON: {response.text[:300]}",
                sandbox_id=c.sandbox_id,
            ) from exc
        res = (
            payload.get("result")
            if isinstance(payload, dict) and isinstance(payload.get("result"), dict)
            else {}
        )
        self._sandbox_id = res.get("sandbox_id") or self._sandbox_id
        if isinstance(payload, dict) and payload.get("status") == "Success":
            result = SandboxStartResponse.model_validate(res)
            self._host_name, self._host_ip = result.host_name, result.host_ip
            return result
        message = payload.get("message") if isinstance(payload, dict) else f"HTTP {response.status_code}"
        if not self._sandbox_id or "is not running yet" not in str(message):
            where = f"sandbox {self._sandbox_id}" if self._sandbox_id else "a new sandbox"
            raise SandboxStartError(
                f"start of {where} failed: {message}", sandbox_id=self._sandbox_id, code=res.get("code")
            )
        result = SandboxStartResponse.model_validate(res)
        deadline = time.monotonic() + c.startup_timeout
        delay = 0.002
        while True:
            status = await self.get_status(include_all_states=True)
            if status.is_alive and status.state == "running":
                return result
            phases_failed = [
                f"{name}: {p.message}"
                for name, p in status.status.items()
                if p.status in ("failed", "timeout")
            ]
            if status.state in ("stopped", "deleted") or phases_failed:
                reason = status.failure_reason or "; ".join(phases_failed) or f"state {status.state}"
                raise SandboxStartError(
                    f"sandbox {self._sandbox_id} failed to start: {reason}", sandbox_id=self._sandbox_id
                )
            if time.monotonic() > deadline:
                raise SandboxStartError(
                    f"sandbox {self._sandbox_id} did not become alive within startup_timeout={c.startup_timeout:g} s",
                    sandbox_id=self._sandbox_id,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def attach(self, sandbox_id: str) -> SandboxStatusResponse:
        """Use an existing sandbox; the config's image/cpus/memory are synced from the server."""
        self._sandbox_id = sandbox_id
        status = await self.get_status(include_all_states=True)
        self._host_name, self._host_ip = status.host_name, status.host_ip
        updates = {
            k: getattr(status, k) for k in ("image", "memory", "cpus") if getattr(status, k) is not None
        }
        self.config = self.config.model_copy(update={**updates, "sandbox_id": sandbox_id})
        return status

    async def get_status(self, include_all_states: bool = False) -> SandboxStatusResponse:
        params = {"sandbox_id": self._need_id(), "include_all_states": str(include_all_states).lower()}
        return SandboxStatusResponse.model_validate(await self._request("GET", "get_status", params=params))

    async def is_alive(self) -> IsAliveResponse:
        try:
            status = await self.get_status()
        except SandboxError as exc:
            return IsAliveResponse(is_alive=False, message=str(exc))
        return IsAliveResponse(is_alive=status.is_alive, message=status.host_name or "")

    async def get_statistics(self) -> StatisticsResponse:
        params = {"sandbox_id": self._need_id()}
        return StatisticsResponse.model_validate(
            await self._request("GET", "get_sandbox_statistics", params=params)
        )

    async def stop(self) -> None:
        """Stop the sandbox (idempotent; errors are swallowed, as upstream)."""
        if not self._sandbox_id:
            return
        with contextlib.suppress(SandboxError):
            await self._request("POST", "stop", json={"sandbox_id": self._sandbox_id})

    async def delete(self) -> None:
        await self._request("POST", "delete", json={"sandbox_id": self._need_id()})

    async def restart(self) -> None:
        """Start a stopped (or failed) sandbox again, with its files, and wait until it is alive."""
        await self._request("POST", "restart", json={"sandbox_id": self._need_id()})
        deadline = time.monotonic() + self.config.startup_timeout
        delay = 0.002
        while time.monotonic() < deadline:
            status = await self.get_status(include_all_states=True)
            if status.is_alive:
                return
            if status.failed:
                raise SandboxStartError(
                    f"sandbox {self._sandbox_id} failed to restart: {status.failure_reason}",
                    sandbox_id=self._sandbox_id,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
        raise SandboxStartError(
            f"sandbox {self._sandbox_id} did not restart in time", sandbox_id=self._sandbox_id
        )

    async def close(self) -> None:
        """Stop the sandbox and release the HTTP connections."""
        await self.stop()
        await self._transport.aclose()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ commands and sessions

    async def execute(self, command: Command) -> CommandResponse:
        return await self._post("execute", command, CommandResponse)

    async def create_session(self, request: CreateBashSessionRequest) -> CreateBashSessionResponse:
        return await self._post("create_session", request, CreateBashSessionResponse)

    async def close_session(self, request: CloseBashSessionRequest) -> CloseBashSessionResponse:
        return await self._post("close_session", request, CloseBashSessionResponse)

    async def run_in_session(self, action: BashAction | BashInterruptAction) -> BashObservation:
        return await self._post("run_in_session", action, BashObservation)

    async def interrupt(
        self, session: str = "default", timeout: float = 0.2, n_retry: int = 3
    ) -> BashObservation:
        """Ctrl-C the command running in `session` (then SIGTERM/SIGKILL its process group)."""
        return await self.run_in_session(
            BashInterruptAction(session=session, timeout=timeout, n_retry=n_retry)
        )

    async def _temp_session(self) -> str:
        name = f"bash-{time.time_ns()}"
        # A generous startup timeout: a loaded host may take more than upstream's 1 s to show the prompt.
        await self.create_session(CreateBashSessionRequest(session=name, startup_timeout=30.0))
        return name

    async def arun(
        self,
        cmd: str,
        session: str | None = None,
        wait_timeout: float = 300,
        wait_interval: float = 10,
        mode: RunMode = "normal",
        response_limited_bytes_in_nohup: int | None = None,
        ignore_output: bool = False,
        output_file: str | None = None,
        check: Literal["raise", "silent", "ignore"] = "raise",
    ) -> BashObservation:
        """Run `cmd`. `normal`: in `session` (a temporary one when None), as upstream a non-zero exit raises
        (`check="silent"`, an addition, returns it instead). `nohup`: as a background process that outlives the
        request, waited for up to `wait_timeout` s; the observation has the command's real exit code."""
        if mode == "normal":
            session = session or await self._temp_session()
            return await self.run_in_session(
                BashAction(command=cmd, session=session, timeout=None, check=check)
            )
        if mode != "nohup":
            raise ValueError(f"mode must be 'normal' or 'nohup', got {mode!r}")
        cwd = None
        if session:
            pwd = await self.run_in_session(BashAction(command="pwd", session=session, check="silent"))
            cwd = pwd.output.strip() or None
        command = cmd
        if output_file:
            parent = os.path.dirname(output_file)
            prefix = f"mkdir -p {shlex.quote(parent)} && " if parent else ""
            command = f"{prefix}( {cmd} ) > {shlex.quote(output_file)} 2>&1"
        proc = await self.start_process(
            StartProcessRequest(command=command, merge_output_streams=True, cwd=cwd)
        )
        info = await self.wait_process(proc.process_id, timeout=wait_timeout)
        if info.running:
            return BashObservation(
                output="",
                exit_code=1,
                failure_reason=f"command still running after wait_timeout={wait_timeout:g} s "
                f"(background process {proc.process_id}, pid {proc.pid})",
            )
        exit_code = info.exit_code
        if ignore_output:
            where = output_file or f"background process {proc.process_id}"
            size = info.stdout_bytes
            if output_file:
                size = len(await self.read_file_bytes_all(output_file))
            return BashObservation(output=f"output is in {where} ({size} bytes)", exit_code=exit_code)
        if output_file:
            data = await self.read_file_bytes_all(output_file, response_limited_bytes_in_nohup)
            output = data.decode(errors="replace")
        else:
            out = await self.process_output(proc.process_id, max_bytes=response_limited_bytes_in_nohup)
            output = out.stdout
        return BashObservation(output=output, exit_code=exit_code)

    # ------------------------------------------------------------------ files

    async def read_file(self, request: ReadFileRequest) -> ReadFileResponse:
        return await self._post("read_file", request, ReadFileResponse)

    async def write_file(self, request: WriteFileRequest) -> WriteFileResponse:
        return await self._post("write_file", request, WriteFileResponse)

    async def write_file_by_path(self, content: str, path: str) -> WriteFileResponse:
        return await self.write_file(WriteFileRequest(content=content, path=path))

    async def read_file_bytes(self, request: ReadFileBytesRequest) -> ReadFileBytesResponse:
        return await self._post("read_file_bytes", request, ReadFileBytesResponse)

    async def read_file_bytes_all(self, path: str, limit: int | None = None) -> bytes:
        import base64

        res = await self.read_file_bytes(ReadFileBytesRequest(path=path, length=limit))
        return base64.b64decode(res.content_base64)

    async def write_file_bytes(self, request: WriteFileBytesRequest) -> WriteFileBytesResponse:
        return await self._post("write_file_bytes", request, WriteFileBytesResponse)

    async def upload(self, request: UploadRequest) -> UploadResponse:
        return await self.upload_by_path(request.source_path, request.target_path)

    async def upload_by_path(
        self, file_path: str | os.PathLike[str], target_path: str, upload_mode: str = "auto"
    ) -> UploadResponse:
        """Upload a local file (or a directory, zipped and unpacked at `target_path`). Direct upload only:
        the `oss` mode is not implemented."""
        if upload_mode == "oss":
            raise NotImplementedError("upload_mode='oss' is not implemented (direct upload only)")
        with upload_source(file_path) as (name, f, unzip):
            result = await self._request(
                "POST",
                "upload",
                files={"file": (name, f)},
                data={"target_path": target_path, "sandbox_id": self._need_id(), "unzip": str(unzip).lower()},
            )
        return UploadResponse.model_validate(result)

    async def download_stream(self, remote_path: str) -> AsyncIterator[bytes]:
        params = {"sandbox_id": self._need_id(), "path": remote_path}
        async with self.http.stream("GET", f"{self.url}/download", params=params) as response:
            if response.headers.get("content-type", "").startswith("application/json"):
                body = await response.aread()
                import json

                self._raise("download", json.loads(body))
            async for chunk in response.aiter_bytes():
                yield chunk

    async def download(self, remote_path: str, local_path: str | os.PathLike[str]) -> Path:
        """Save a sandbox file to `local_path` (a directory arrives as `.tar.gz` bytes, saved as is)."""
        local = Path(local_path)
        local.parent.mkdir(parents=True, exist_ok=True)
        with local.open("wb") as f:
            async for chunk in self.download_stream(remote_path):
                f.write(chunk)
        return local

    # ------------------------------------------------------------------ background processes

    async def start_process(self, request: StartProcessRequest) -> ProcessInfo:
        return await self._post("processes", request, ProcessInfo)

    async def get_process(self, process_id: str) -> ProcessInfo:
        params = {"sandbox_id": self._need_id()}
        return ProcessInfo.model_validate(
            await self._request("GET", f"processes/{process_id}", params=params)
        )

    async def list_processes(self) -> list[ProcessInfo]:
        result = await self._request("GET", "processes", params={"sandbox_id": self._need_id()})
        return [ProcessInfo.model_validate(p) for p in result["processes"]]

    async def process_output(
        self, process_id: str, stdout_offset: int = 0, stderr_offset: int = 0, max_bytes: int | None = None
    ) -> ProcessOutputResponse:
        params: dict[str, Any] = {
            "sandbox_id": self._need_id(),
            "stdout_offset": stdout_offset,
            "stderr_offset": stderr_offset,
        }
        if max_bytes is not None:
            params["max_bytes"] = max_bytes
        return ProcessOutputResponse.model_validate(
            await self._request("GET", f"processes/{process_id}/output", params=params)
        )

    async def wait_process(self, process_id: str, timeout: float | None = None) -> ProcessInfo:
        return await self._post(f"processes/{process_id}/wait", {"timeout": timeout}, ProcessInfo)

    async def kill_process(self, process_id: str, signal: str | int = "SIGTERM") -> ProcessInfo:
        return await self._post(f"processes/{process_id}/kill", {"signal": signal}, ProcessInfo)

    async def stream_process(
        self, process_id: str, stream: str = "stdout", offset: int = 0
    ) -> AsyncIterator[bytes]:
        """The process's output as it is produced, until it ends."""
        params = {"sandbox_id": self._need_id(), "stream": stream, "offset": offset}
        async with self.http.stream(
            "GET", f"{self.url}/processes/{process_id}/stream", params=params
        ) as response:
            if response.headers.get("content-type", "").startswith("application/json"):
                import json

                self._raise("stream", json.loads(await response.aread()))
            async for chunk in response.aiter_raw():
                yield chunk


class SandboxGroup:
    """`size` sandboxes started `start_concurrency` at a time, each retried `start_retry_times` times."""

    def __init__(self, config: SandboxGroupConfig) -> None:
        self.config = config
        base = config.model_dump(exclude={"size", "start_concurrency", "start_retry_times", "sandbox_id"})
        self.sandbox_list = [Sandbox(SandboxConfig(**base)) for _ in range(config.size)]

    async def start(self) -> None:
        sem = asyncio.Semaphore(max(1, self.config.start_concurrency))

        async def one(sb: Sandbox) -> None:
            async with sem:
                for attempt in range(max(1, self.config.start_retry_times)):
                    try:
                        await sb.start()
                        return
                    except SandboxError:
                        if attempt + 1 >= self.config.start_retry_times:
                            raise
                        await asyncio.sleep(1)

        await asyncio.gather(*(one(sb) for sb in self.sandbox_list))

    async def stop(self) -> None:
        await asyncio.gather(*(sb.stop() for sb in self.sandbox_list), return_exceptions=True)


__all__ = [
    "RunMode",
    "Sandbox",
    "SandboxError",
    "SandboxGroup",
    "SandboxRequestError",
    "SandboxStartError",
    "SandboxUnreachableError",
]
