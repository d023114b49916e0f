"""Turning exceptions into HTTP replies: runtime errors as HTTP 511 with the class path (as upstream), bad
bodies as 422 naming the field, HTTP errors as themselves. The rocklet never answers 500 with a traceback."""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from pydantic import ValidationError

from rock.actions import EXCEPTION_KEYS, EXCEPTION_STATUS_CODE, ExceptionTransfer

log = logging.getLogger("rocklet")
_JSON = "application/json"


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


def exception_response(exc: BaseException) -> Response[bytes]:
    body = transfer(exc).model_dump()
    return Response(
        content=json.dumps({key: body for key in EXCEPTION_KEYS}).encode(),
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


def handle_exception(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
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
    return exception_response(exc)
