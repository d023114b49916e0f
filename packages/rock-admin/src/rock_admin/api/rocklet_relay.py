"""`/sandboxes/{id}/rocklet/{path}`: one sandbox's rocklet API, relayed as it is, for clients that talk to a
rocklet directly (upstream ROCK's `RemoteSandboxRuntime`, which takes a base URL and sends no `X-API-Key`).

Point such a client at `http://rock:<api key>@admin/apis/envs/sandbox/v1/sandboxes/<id>/rocklet`: the key comes
as a Basic password (the admin's key middleware takes it), the caller must own the sandbox (`tenancy`: anyone
else gets the unknown-id answer), and the admin adds the sandbox's own token on its side of the relay. Replies
are the rocklet's own, status included (its 511 exception transfers too), not ROCK's envelope.
"""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, Response, route
from litestar.response import Stream

from rock_admin.errors import (
    RockletTimeoutError,
    SandboxNotFoundError,
    SandboxNotRunningError,
    ServiceError,
)
from rock_admin.service.dataplane import DataPlane
from rock_admin.service.rawhttp import JSON
from rocklet.errors import ROCK_CLIENT_HEADER

#: What upstream's runtime client calls; others (process streams) reply in ways the relay's client does not
#: speak, so they are refused rather than garbled.
RELAYED = {
    ("GET", "is_alive"),
    ("POST", "upload"),
    ("GET", "get_statistics"),
    *(
        ("POST", p)
        for p in (
            "close",
            "create_session",
            "run_in_session",
            "close_session",
            "execute",
            "read_file",
            "write_file",
            "env/make",
            "env/step",
            "env/reset",
            "env/close",
            "env/list",
        )
    ),
}
#: Passed on so the rocklet names exceptions in upstream ROCK's classes (`rocklet.errors`: it knows that
#: client by this header).
_DIALECT = f"{ROCK_CLIENT_HEADER}: \r\n".encode()
_STATUS = {SandboxNotFoundError: 404, SandboxNotRunningError: 409, RockletTimeoutError: 504}


def _detail(status: int, detail: str) -> Response[bytes]:
    return Response(
        json.dumps({"detail": detail}).encode(), media_type="application/json", status_code=status
    )


def _content_type(path: str, header: str) -> bytes | None:
    """The body type to send on: JSON, except an upload's multipart type with its boundary (None: refused)."""
    if path != "upload":
        return JSON
    if not header.lower().startswith("multipart/form-data") or any(c in header for c in "\r\n"):
        return None
    return header.encode("latin-1")


def _own_timeout(method: str, raw: bytes) -> float | None:
    """A command's own timeout, so the admin's deadline on the call is that plus a margin."""
    if method != "POST" or b'"timeout"' not in raw:
        return None
    try:
        timeout = json.loads(raw).get("timeout")
    except (ValueError, AttributeError, RecursionError):
        return None  # the rocklet names what is wrong with the body
    ok = isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0
    return float(timeout) if ok else None


@route(
    "/sandboxes/{sandbox_id:str}/rocklet/{path:path}",
    http_method=["GET", "POST"],
    status_code=200,
    include_in_schema=False,
)
async def rocklet_relay(request: Request[Any, Any, Any], sandbox_id: str, path: str) -> Response[bytes]:
    plane: DataPlane = request.app.state.data
    path = path.strip("/")
    try:
        plane.get(sandbox_id)  # a stranger is told what an unused id is told, whatever the path
    except ServiceError as exc:
        return _detail(_STATUS.get(type(exc), 400), str(exc))
    if (request.method, path) not in RELAYED:
        return _detail(404, f"path: /{path} ({request.method}) is not relayed to the rocklet")
    content_type = _content_type(path, request.headers.get("content-type", ""))
    if content_type is None:
        return _detail(
            415, "content-type: /upload takes multipart/form-data (fields file, target_path, unzip)"
        )
    raw = await request.body()
    query = request.scope.get("query_string") or b""
    target = "/" + path + ("?" + query.decode("latin-1") if query else "")
    try:
        reply = await plane.open_raw(
            sandbox_id,
            request.method.encode(),
            target,
            raw,
            _own_timeout(request.method, raw),
            check=False,
            headers=_DIALECT if ROCK_CLIENT_HEADER in request.headers else b"",
            content_type=content_type,
        )
    except ServiceError as exc:
        return _detail(_STATUS.get(type(exc), 400), str(exc))
    except (ConnectionError, OSError) as exc:
        return _detail(502, f"the sandbox's rocklet did not answer: {type(exc).__name__}: {exc}")
    if reply.body is not None:
        return Response(reply.body, media_type="application/json", status_code=reply.status)
    assert reply.chunks is not None  # a large file read: relayed as it arrives
    return Stream(reply.chunks, media_type="application/json", headers={"content-length": str(reply.length)})
