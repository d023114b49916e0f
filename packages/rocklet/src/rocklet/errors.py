"""Turning exceptions into HTTP replies: runtime errors as HTTP 511 with the class path (as upstream), bad
bodies as 422 naming the field, HTTP errors as themselves. The rocklet never answers 500 with a traceback.

Each client rebuilds the class path it reads, so each key speaks its reader's dialect: `swerexception` (read
only by SWE-ReX's RemoteRuntime) names `swerex.exceptions.*`; `rockletexception` names ours (`rock.exceptions.*`,
what our SDK imports), or `rock.rocklet.exceptions.*` for upstream ROCK's RemoteSandboxRuntime, known by the
`sandbox_id` header it always sends. A class the dialect lacks is named by its nearest base there
(`SessionBusyError` is a `SwerexException` to SWE-ReX); builtins (`FileNotFoundError`) are the same in all.
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from pydantic import ValidationError

from rock import exceptions as rock_exceptions
from rock.actions import EXCEPTION_STATUS_CODE, ExceptionTransfer

log = logging.getLogger("rocklet")
_JSON = "application/json"

#: Classes each upstream client can import, by the name ours share (SWE-ReX 1.4.0, rl-rock 1.11.0).
_SHARED = [
    "SessionNotInitializedError",
    "NonZeroExitCodeError",
    "BashIncorrectSyntaxError",
    "CommandTimeoutError",
    "NoExitCodeError",
    "SessionExistsError",
    "SessionDoesNotExistError",
]
DIALECTS: dict[str, dict[str, str]] = {
    "swerex": {"RockletException": "swerex.exceptions.SwerexException"}
    | {n: f"swerex.exceptions.{n}" for n in _SHARED},
    "rock": {"RockletException": "rock.rocklet.exceptions.RockletException"}
    | {n: f"rock.rocklet.exceptions.{n}" for n in _SHARED},
}
#: The request header upstream ROCK's RemoteSandboxRuntime always sends (its value may be empty).
ROCK_CLIENT_HEADER = "sandbox_id"


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def transfer(exc: BaseException) -> ExceptionTransfer:
    """The wire form of `exc`."""
    bases = [class_path(c) for c in type(exc).__mro__[1:] if c not in (object, BaseException)]
    return ExceptionTransfer(
        message=str(exc),
        class_path=class_path(type(exc)),
        traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        extra_info=_jsonable(getattr(exc, "extra_info", None) or {}),
        bases=bases,
    )


def dialect_class_path(cls: type, dialect: str) -> str:
    """The class path a `dialect` client can rebuild for `cls`: its own, its nearest base's, or a builtin's."""
    table = DIALECTS[dialect]
    for c in cls.__mro__:
        if c.__module__ == rock_exceptions.__name__ and c.__name__ in table:
            return table[c.__name__]
        if c.__module__ == "builtins":
            return class_path(c)
    return class_path(cls)


def exception_response(exc: BaseException, *, rock_client: bool = False) -> Response[bytes]:
    """HTTP 511 with `exc` under both upstream keys, each in its reader's dialect (`rock_client`: the
    request came from upstream ROCK's RemoteSandboxRuntime)."""
    ours = transfer(exc).model_dump()
    rocklet = {**ours, "class_path": dialect_class_path(type(exc), "rock")} if rock_client else ours
    swerex = {**ours, "class_path": dialect_class_path(type(exc), "swerex")}
    return Response(
        content=json.dumps({"rockletexception": rocklet, "swerexception": swerex}).encode(),
        status_code=EXCEPTION_STATUS_CODE,
        media_type=_JSON,
    )


def validation_response(exc: ValidationError) -> Response[bytes]:
    """422 in FastAPI's shape: `{"detail": [{"loc": [...], "msg": ..., "type": ...}, ...]}`."""
    detail = [
        {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    return Response(content=json.dumps({"detail": detail}).encode(), status_code=422, media_type=_JSON)


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if isinstance(exc, ValidationError):
        return validation_response(exc)
    if isinstance(exc, HTTPException):
        return Response(
            content=json.dumps({"detail": exc.detail, "status_code": exc.status_code}).encode(),
            status_code=exc.status_code,
            media_type=_JSON,
            headers=exc.headers or None,
        )
    log.debug("request failed: %r", exc, exc_info=exc)
    return exception_response(exc, rock_client=ROCK_CLIENT_HEADER in request.headers)
