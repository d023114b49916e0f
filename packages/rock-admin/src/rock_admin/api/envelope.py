"""ROCK's envelope `{"status": "Success"|"Failed", "message", "error", "result"}` (always HTTP 200), and the
mapping from every failure to it, so a client never sees a 500 with a traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import httpx
from litestar import Response
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, Reference, RequestBody, Schema
from pydantic import BaseModel, TypeAdapter, ValidationError

from rock.actions import CODE_BAD_REQUEST, CODE_COMMAND_ERROR, CODE_INTERNAL
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


def success(result: Any = None, message: str | None = None) -> Response[bytes]:
    body = result.model_dump_json().encode() if isinstance(result, BaseModel) else json.dumps(result).encode()
    head = b'{"status":"Success","message":' + json.dumps(message).encode() + b',"error":null,"result":'
    return Response(head + body + b"}", media_type=_JSON, status_code=200)


def failed(
    message: str,
    code: int = CODE_BAD_REQUEST,
    *,
    error: str | None = None,
    result: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response[bytes]:
    res = {"code": code, "exit_code": None, "failure_reason": message, "extra_info": {}}
    res.update(result or {})
    body = {"status": "Failed", "message": message, "error": error or message, "result": res}
    return Response(json.dumps(body, default=str).encode(), media_type=_JSON, status_code=status_code)


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
