"""A low-level async client for one rocklet, over TCP or a Unix socket.

One pooled `httpx.AsyncClient` per `RockletClient`, so requests reuse connections. Errors the rocklet
serialises (HTTP 511) are raised again here as their own class (`FileNotFoundError`,
`rock.exceptions.NonZeroExitCodeError`, ...); 401 raises `AuthenticationError`, other 4xx
`InvalidRequestError`.

    async with RockletClient("http://127.0.0.1:8000", auth_token="secret") as rocklet:
        await rocklet.create_session(CreateBashSessionRequest(session="s"))
        obs = await rocklet.run_in_session(BashAction(command="echo hi", session="s"))
"""

from __future__ import annotations

import asyncio
import builtins
import importlib
import json
import os
import ssl
import sys
import tarfile
import uuid
from collections.abc import AsyncIterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from rock.actions import (
    EXCEPTION_KEYS,
    EXCEPTION_STATUS_CODE,
    BashAction,
    BashInterruptAction,
    BashObservation,
    CloseBashSessionRequest,
    CloseBashSessionResponse,
    CloseResponse,
    Command,
    CommandResponse,
    CreateBashSessionRequest,
    CreateBashSessionResponse,
    EnvCloseRequest,
    EnvCloseResponse,
    EnvListResponse,
    EnvMakeRequest,
    EnvMakeResponse,
    EnvResetRequest,
    EnvResetResponse,
    EnvStepRequest,
    EnvStepResponse,
    ExceptionTransfer,
    IsAliveResponse,
    KillProcessRequest,
    ProcessInfo,
    ProcessListResponse,
    ProcessOutputResponse,
    ReadFileBytesRequest,
    ReadFileBytesResponse,
    ReadFileRequest,
    ReadFileResponse,
    StartProcessRequest,
    StatisticsResponse,
    UploadResponse,
    WaitProcessRequest,
    WriteFileBytesRequest,
    WriteFileBytesResponse,
    WriteFileRequest,
    WriteFileResponse,
)
from rock.exceptions import AuthenticationError, InvalidRequestError, RemoteException
from rock.retry import RETRYABLE_ERRORS, RETRYABLE_STATUSES, backoff_delay
from rock.upload import upload_source

M = TypeVar("M", bound=BaseModel)

#: Packages whose exception classes the client may import to rebuild a remote error.
_IMPORTABLE_ROOTS = ("rock", "gem_envs")
#: Seconds added to a command's own timeout for the HTTP read timeout.
_TIMEOUT_MARGIN = 30.0


#: The `X-Request-ID` of the request a proxy (the admin) is serving: its calls to the rocklet carry the client's
#: id, so a client's retry through the proxy is answered from the rocklet's replay cache too.
FORWARDED_REQUEST_ID: ContextVar[str | None] = ContextVar("forwarded_request_id", default=None)


def new_request_id() -> str:
    return FORWARDED_REQUEST_ID.get() or uuid.uuid4().hex


_SSL_CONTEXT: ssl.SSLContext | None = None


def shared_ssl_context() -> ssl.SSLContext:
    """One default SSL context for every client of the process: building one loads the CA bundle (~20 ms),
    which would otherwise be paid per client (per sandbox)."""
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        _SSL_CONTEXT = ssl.create_default_context()
    return _SSL_CONTEXT


def _resolve_class(path: str) -> type[BaseException] | None:
    module_name, _, qualname = path.rpartition(".")
    if not module_name:
        return None
    if module_name == "builtins":
        module: Any = builtins
    elif module_name in sys.modules:
        module = sys.modules[module_name]
    elif module_name.split(".")[0] in _IMPORTABLE_ROOTS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return None
    else:
        return None
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if isinstance(obj, type) and issubclass(obj, Exception):
        return obj
    return None


def rebuild_exception(transfer: ExceptionTransfer) -> Exception:
    """The exception `transfer` describes: its own class when importable here, else a `RemoteException`
    subclass that also derives from the nearest importable base (so `except ValueError:` still works)."""
    cls = _resolve_class(transfer.class_path)
    if cls is not None:
        try:
            exc = cls(transfer.message)
            exc.extra_info = transfer.extra_info  # type: ignore[attr-defined]
            return exc
        except Exception:
            pass
    base: type[Exception] = Exception
    for path in transfer.bases:
        found = _resolve_class(path)
        if found is not None and found is not Exception:
            try:
                type("_probe", (RemoteException, found), {})
            except TypeError:
                continue
            base = found
            break
    name = transfer.class_path.rpartition(".")[2] or "RemoteException"
    remote_cls = type(name, (RemoteException, base), {"__module__": "rock.exceptions.remote"})
    message = f"{transfer.class_path}: {transfer.message}" if transfer.class_path else transfer.message
    return remote_cls(message, class_path=transfer.class_path, extra_info=transfer.extra_info)


def raise_for_response(response: httpx.Response) -> None:
    """Raise what a failed rocklet reply means."""
    status = response.status_code
    if status < 400:
        return
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        body = None
    if status == EXCEPTION_STATUS_CODE and isinstance(body, dict):
        for key in EXCEPTION_KEYS:
            if key in body:
                raise rebuild_exception(ExceptionTransfer.model_validate(body[key]))
    detail = body.get("detail") if isinstance(body, dict) else response.text
    if status == 401:
        raise AuthenticationError(f"rocklet rejected the API key: {detail}", extra_info={"detail": detail})
    if 400 <= status < 500:
        raise InvalidRequestError(
            f"rocklet rejected {response.request.method} {response.request.url.path} ({status}): {detail}",
            extra_info={"detail": detail, "status_code": status},
        )
    response.raise_for_status()


class RockletClient:
    """Talks to one rocklet. Give `url` (`http://host:port`, `host:port`) or `uds` (a socket path).

    `timeout` bounds each HTTP call (None: no bound, which suits long commands); calls that carry their own
    timeout (a `BashAction`, a `Command`) wait that long plus a margin.

    Every call carries an `X-Request-ID`; when the connection is lost before the reply (or a proxy answers
    502/503/504), the call is sent again with the same id up to `retries` times, `retry_backoff` s apart at
    first and doubling: the rocklet answers a repeat from its replay cache, so nothing runs twice.
    Uploads are not retried (their body is a stream).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        uds: str | None = None,
        auth_token: str = "",
        timeout: float | None = None,
        connect_timeout: float = 10.0,
        max_connections: int = 256,
        headers: dict[str, str] | None = None,
        retries: int = 3,
        retry_backoff: float = 0.1,
    ) -> None:
        if (url is None) == (uds is None):
            raise ValueError("give exactly one of url= or uds=")
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        transport = httpx.AsyncHTTPTransport(uds=uds, limits=limits, verify=shared_ssl_context())
        if url is not None and not url.startswith(("http://", "https://")):
            url = "http://" + url
        all_headers = dict(headers or {})
        if auth_token:
            all_headers["X-API-Key"] = auth_token
        self.base_url = url or "http://rocklet"
        self.uds = uds
        self.retries = max(0, retries)
        self.retry_backoff = retry_backoff
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            headers=all_headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
        )

    async def __aenter__(self) -> RockletClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (not the rocklet's sessions: that is `close()`)."""
        await self._http.aclose()

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _timeout_for(seconds: float | None) -> Any:
        return httpx.USE_CLIENT_DEFAULT if seconds is None else seconds + _TIMEOUT_MARGIN

    async def _call(
        self,
        method: str,
        path: str,
        out: type[M],
        body: BaseModel | None = None,
        *,
        timeout: Any = httpx.USE_CLIENT_DEFAULT,
        **kwargs: Any,
    ) -> M:
        headers = {"X-Request-ID": new_request_id()}
        if body is not None:
            kwargs["content"] = body.model_dump_json()
            headers["content-type"] = "application/json"
        kwargs["headers"] = headers
        retries = 0 if "files" in kwargs else self.retries
        response = await self._send(method, path, retries, timeout=timeout, **kwargs)
        raise_for_response(response)
        return out.model_validate_json(response.content)

    async def _send(self, method: str, path: str, retries: int, **kwargs: Any) -> httpx.Response:
        """One logical request: the same bytes and `X-Request-ID` on every attempt."""
        for attempt in range(retries + 1):
            last = attempt == retries
            try:
                response = await self._http.request(method, path, **kwargs)
            except RETRYABLE_ERRORS:
                if last:
                    raise
            else:
                if last or response.status_code not in RETRYABLE_STATUSES:
                    return response
            await asyncio.sleep(backoff_delay(attempt, self.retry_backoff))
        raise AssertionError("unreachable")  # pragma: no cover

    async def post_raw(self, path: str, content: bytes, *, timeout: Any = httpx.USE_CLIENT_DEFAULT) -> bytes:
        """POST a JSON body as bytes and return the reply's bytes, unparsed (for proxies such as the admin);
        errors are raised as by every other call."""
        response = await self._http.post(
            path, content=content, headers={"content-type": "application/json"}, timeout=timeout
        )
        raise_for_response(response)
        return response.content

    # ------------------------------------------------------------------ liveness

    async def is_alive(self, *, timeout: float = 5.0) -> IsAliveResponse:
        """Never raises for an unreachable rocklet: returns `is_alive=False` with the reason."""
        try:
            return await self._call("GET", "/is_alive", IsAliveResponse, timeout=timeout)
        except (httpx.HTTPError, OSError, AuthenticationError, InvalidRequestError) as exc:
            return IsAliveResponse(is_alive=False, message=f"{type(exc).__name__}: {exc}")

    async def get_statistics(self) -> StatisticsResponse:
        return await self._call("GET", "/get_statistics", StatisticsResponse)

    async def close(self) -> CloseResponse:
        """Close every session, process and env in the rocklet."""
        return await self._call("POST", "/close", CloseResponse)

    # ------------------------------------------------------------------ sessions

    async def create_session(self, request: CreateBashSessionRequest) -> CreateBashSessionResponse:
        return await self._call(
            "POST",
            "/create_session",
            CreateBashSessionResponse,
            request,
            timeout=self._timeout_for(request.startup_timeout),
        )

    async def run_in_session(self, action: BashAction | BashInterruptAction) -> BashObservation:
        timeout = (
            self._timeout_for(action.timeout) if isinstance(action, BashAction) else self._timeout_for(30.0)
        )
        return await self._call("POST", "/run_in_session", BashObservation, action, timeout=timeout)

    async def close_session(self, request: CloseBashSessionRequest) -> CloseBashSessionResponse:
        return await self._call("POST", "/close_session", CloseBashSessionResponse, request)

    # ------------------------------------------------------------------ commands

    async def execute(self, command: Command) -> CommandResponse:
        return await self._call(
            "POST", "/execute", CommandResponse, command, timeout=self._timeout_for(command.timeout)
        )

    # ------------------------------------------------------------------ files

    async def read_file(self, request: ReadFileRequest) -> ReadFileResponse:
        return await self._call("POST", "/read_file", ReadFileResponse, request)

    async def write_file(self, request: WriteFileRequest) -> WriteFileResponse:
        return await self._call("POST", "/write_file", WriteFileResponse, request)

    async def read_file_bytes(self, request: ReadFileBytesRequest) -> ReadFileBytesResponse:
        return await self._call("POST", "/read_file_bytes", ReadFileBytesResponse, request)

    async def write_file_bytes(self, request: WriteFileBytesRequest) -> WriteFileBytesResponse:
        return await self._call("POST", "/write_file_bytes", WriteFileBytesResponse, request)

    async def upload(self, source_path: str | os.PathLike[str], target_path: str) -> UploadResponse:
        """Upload a file to `target_path`, or a directory (as a zip, unpacked there)."""
        with upload_source(source_path) as (name, f, unzip):
            return await self._call(
                "POST",
                "/upload",
                UploadResponse,
                files={"file": (name, f)},
                data={"target_path": target_path, "unzip": "true" if unzip else "false"},
            )

    async def download_stream(self, path: str) -> AsyncIterator[bytes]:
        """The bytes of a remote file (a directory comes as a .tar.gz), as they arrive."""
        async with self._http.stream("GET", "/download", params={"path": path}) as response:
            if response.status_code >= 400:
                await response.aread()
                raise_for_response(response)
            async for chunk in response.aiter_bytes():
                yield chunk

    async def download(self, path: str, local_path: str | os.PathLike[str]) -> Path:
        """Save a remote file to `local_path`; a remote directory is unpacked into `local_path`."""
        local = Path(local_path)
        async with self._http.stream("GET", "/download", params={"path": path}) as response:
            if response.status_code >= 400:
                await response.aread()
                raise_for_response(response)
            is_dir = response.headers.get("content-type", "").startswith("application/gzip")
            target = local.with_name(local.name + ".download.tar.gz") if is_dir else local
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as f:
                async for chunk in response.aiter_bytes():
                    f.write(chunk)
        if is_dir:
            local.mkdir(parents=True, exist_ok=True)
            with tarfile.open(target) as tf:
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(local, filter="data")
                else:  # pragma: no cover - Python without extraction filters
                    tf.extractall(local)
            target.unlink()
        return local

    # ------------------------------------------------------------------ background processes

    async def start_process(self, request: StartProcessRequest) -> ProcessInfo:
        return await self._call("POST", "/processes", ProcessInfo, request)

    async def list_processes(self) -> list[ProcessInfo]:
        return (await self._call("GET", "/processes", ProcessListResponse)).processes

    async def get_process(self, process_id: str) -> ProcessInfo:
        return await self._call("GET", f"/processes/{process_id}", ProcessInfo)

    async def process_output(
        self, process_id: str, stdout_offset: int = 0, stderr_offset: int = 0, max_bytes: int | None = None
    ) -> ProcessOutputResponse:
        params: dict[str, int] = {"stdout_offset": stdout_offset, "stderr_offset": stderr_offset}
        if max_bytes is not None:
            params["max_bytes"] = max_bytes
        return await self._call(
            "GET", f"/processes/{process_id}/output", ProcessOutputResponse, params=params
        )

    async def stream_process(
        self, process_id: str, stream: str = "stdout", offset: int = 0
    ) -> AsyncIterator[bytes]:
        """The process's output as it is produced, until it ends."""
        params: dict[str, str | int] = {"stream": stream, "offset": offset}
        async with self._http.stream(
            "GET", f"/processes/{process_id}/stream", params=params, timeout=None
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                raise_for_response(response)
            async for chunk in response.aiter_raw():
                yield chunk

    async def wait_process(self, process_id: str, timeout: float | None = None) -> ProcessInfo:
        return await self._call(
            "POST",
            f"/processes/{process_id}/wait",
            ProcessInfo,
            WaitProcessRequest(timeout=timeout),
            timeout=self._timeout_for(timeout),
        )

    async def kill_process(self, process_id: str, signal: str | int = "SIGTERM") -> ProcessInfo:
        return await self._call(
            "POST", f"/processes/{process_id}/kill", ProcessInfo, KillProcessRequest(signal=signal)
        )

    async def remove_process(self, process_id: str) -> ProcessInfo:
        return await self._call("DELETE", f"/processes/{process_id}", ProcessInfo)

    # ------------------------------------------------------------------ GEM envs

    async def env_make(self, request: EnvMakeRequest) -> EnvMakeResponse:
        return await self._call("POST", "/env/make", EnvMakeResponse, request)

    async def env_reset(self, request: EnvResetRequest) -> EnvResetResponse:
        return await self._call("POST", "/env/reset", EnvResetResponse, request)

    async def env_step(self, request: EnvStepRequest) -> EnvStepResponse:
        return await self._call("POST", "/env/step", EnvStepResponse, request)

    async def env_close(self, request: EnvCloseRequest) -> EnvCloseResponse:
        return await self._call("POST", "/env/close", EnvCloseResponse, request)

    async def env_list(self) -> EnvListResponse:
        return await self._call("POST", "/env/list", EnvListResponse)


__all__ = ["RockletClient", "raise_for_response", "rebuild_exception", "shared_ssl_context"]
