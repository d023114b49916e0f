"""ROCK's envelope `{"status": "Success"|"Failed", "message", "error", "result"}` (always HTTP 200), and the
mapping from every failure to it, so a client never sees a 500 with a traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import httpx
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, Reference, RequestBody, Schema
from pydantic import BaseModel, TypeAdapter, ValidationError

from rock.actions import CODE_BAD_REQUEST, CODE_COMMAND_ERROR, CODE_INTERNAL, SANDBOX_API_PREFIX
from rock.exceptions import (
    BashIncorrectSyntaxError,
    CommandTimeoutError,
    InvalidRequestError,
    NonZeroExitCodeError,
    RemoteException,
    RockletException,
)
from rock_admin.service.lifecycle import ServiceError

log = logging.getLogger("rock_admin.api")
T = TypeVar("T")
_JSON = "application/json"
_COMMAND_ERRORS = (NonZeroExitCodeError, CommandTimeoutError, BashIncorrectSyntaxError)
#: A body whose JSON nests deeper than the parsers go (they raise RecursionError).
TOO_DEEP = "body: the JSON nests too deeply"


class Envelope(BaseModel):
    """ROCK's envelope, as declared in the OpenAPI schema (every sandbox API answer, HTTP 200)."""

    status: Literal["Success", "Failed"]
    message: str | None
    error: str | None
    result: Any


#: The OpenAPI declaration of a sandbox API route: HTTP 200 with the envelope (a POST answers 200, not 201).
ENVELOPE_RESPONSES = {200: ResponseSpec(Envelope, description="ROCK's envelope (Success or Failed)")}
#: A streamed route: the bytes, or (an error before the first byte) a Failed envelope; see `StreamOperation`.
STREAM_RESPONSES = {
    200: ResponseSpec(
        bytes,
        description="the bytes; an error comes as ROCK's Failed envelope (application/json)",
        media_type="application/octet-stream",
        generate_examples=False,
    )
}


@dataclass
class StreamOperation(Operation):
    """Declares the JSON envelope next to the streamed bytes (Litestar's ResponseSpec takes one media type)."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if ok is not None and not isinstance(ok, Reference) and ok.content is not None:
            ok.content[_JSON] = OpenAPIMediaType(schema=Reference(ref="#/components/schemas/Envelope"))


@dataclass
class _RawSchema(Schema):
    """A JSON schema given as a dict (pydantic's), emitted as is."""

    raw: dict[str, Any] = field(default_factory=dict)

    def to_schema(self) -> dict[str, Any]:
        return self.raw


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def raw_body_operation(body_type: Any) -> type[Operation]:
    """For a route that reads its body raw (the hot paths: forwarded unparsed), declare the body it expects."""
    schema = TypeAdapter(body_type).json_schema()
    schema = _inline(schema, schema.get("$defs", {}))

    @dataclass
    class RawBodyOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                content={_JSON: OpenAPIMediaType(schema=_RawSchema(raw=schema))}, required=True
            )

    return RawBodyOperation


#: Every Success envelope without a message starts so; a rocklet's reply relayed unparsed follows, then `}`.
SUCCESS_HEAD = b'{"status":"Success","message":null,"error":null,"result":'


def envelope_body(status: str, message: str | None, error: str | None, result: Any) -> bytes:
    """The envelope's bytes: every Failed answer of the admin (routes, exception handlers, the key check, the
    write forwarder) is built here."""
    body = {"status": status, "message": message, "error": error, "result": result}
    return json.dumps(body, default=str).encode()


def success(result: Any = None, message: str | None = None) -> Response[bytes]:
    body = result.model_dump_json().encode() if isinstance(result, BaseModel) else json.dumps(result).encode()
    head = SUCCESS_HEAD
    if message is not None:
        head = b'{"status":"Success","message":' + json.dumps(message).encode() + b',"error":null,"result":'
    return Response(head + body + b"}", media_type=_JSON, status_code=200)


def failed_body(
    message: str,
    code: int = CODE_BAD_REQUEST,
    *,
    error: str | None = None,
    result: dict[str, Any] | None = None,
) -> bytes:
    res = {"code": code, "exit_code": None, "failure_reason": message, "extra_info": {}}
    res.update(result or {})
    return envelope_body("Failed", message, error or message, res)


def failed(
    message: str,
    code: int = CODE_BAD_REQUEST,
    *,
    error: str | None = None,
    result: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response[bytes]:
    body = failed_body(message, code, error=error, result=result)
    return Response(body, media_type=_JSON, status_code=status_code)


def class_path(exc: BaseException) -> str:
    if isinstance(exc, RemoteException) and exc.class_path:
        return exc.class_path
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def from_exception(exc: BaseException, sandbox_id: str | None = None) -> Response[bytes]:
    where = f" (sandbox {sandbox_id})" if sandbox_id else ""
    if isinstance(exc, ServiceError):
        return failed(str(exc), exc.code)
    if isinstance(exc, ValidationError):
        return failed("invalid parameter", CODE_BAD_REQUEST, error=str(exc))
    if isinstance(exc, InvalidRequestError):
        return failed(f"invalid parameter{where}: {exc}", CODE_BAD_REQUEST, error=str(exc))
    if isinstance(exc, (RockletException, OSError, ValueError, LookupError)) and not isinstance(
        exc, (httpx.HTTPError, ConnectionError)
    ):
        code = CODE_COMMAND_ERROR if isinstance(exc, _COMMAND_ERRORS) else CODE_BAD_REQUEST
        extra = dict(getattr(exc, "extra_info", {}) or {})
        result: dict[str, Any] = {"class_path": class_path(exc), "extra_info": extra}
        if "exit_code" in extra:
            result["exit_code"] = extra["exit_code"]
        return failed(f"{type(exc).__name__}{where}: {exc}", code, result=result)
    if isinstance(exc, (httpx.HTTPError, ConnectionError)):
        return failed(
            f"the sandbox's rocklet did not answer{where}: {type(exc).__name__}: {exc}", CODE_INTERNAL
        )
    log.exception("unexpected error%s", where)
    return failed(f"internal error{where}: {type(exc).__name__}: {exc}", CODE_INTERNAL)


async def envelope(call: Awaitable[Any], sandbox_id: str | None = None) -> Response[bytes]:
    """Await `call` and wrap its result (a model or JSON data) in the envelope; any error → `Failed`."""
    try:
        return success(await call)
    except Exception as exc:
        return from_exception(exc, sandbox_id)


def _sandbox_api(request: Request[Any, Any, Any]) -> bool:
    return request.url.path.startswith(SANDBOX_API_PREFIX)


def _validation_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    detail = exc.extra or exc.detail
    if _sandbox_api(request):
        error = detail if isinstance(detail, str) else json.dumps(detail, default=str)
        return failed("invalid parameter", CODE_BAD_REQUEST, error=error)
    return Response({"detail": detail}, status_code=422)


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code == 400 and _sandbox_api(request):
        # A body that is not JSON at all (Litestar's 400, not a ValidationException): the envelope too.
        return _validation_error(request, exc)
    return Response({"detail": exc.detail}, status_code=exc.status_code)


def _unhandled(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """What a route raises: the envelope on the sandbox API (`from_exception`), `{"detail"}` elsewhere."""
    if isinstance(exc, RecursionError):  # the body parser gave up on its depth: a bad body, not our error
        if _sandbox_api(request):
            return failed("invalid parameter", CODE_BAD_REQUEST, error=TOO_DEEP)
        return Response({"detail": TOO_DEEP}, status_code=400)
    if _sandbox_api(request):
        return from_exception(exc)
    log.exception("unhandled error on %s", request.url.path)
    return Response({"detail": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)


#: The app's exception handlers: the one place a raised error becomes an answer.
EXCEPTION_HANDLERS: dict[type[Exception], Any] = {
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _unhandled,
}
