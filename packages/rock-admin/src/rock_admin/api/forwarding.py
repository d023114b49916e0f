"""Handing a validated request to the sandbox's rocklet and its reply, unparsed, back in ROCK's envelope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, Response
from litestar.response import Stream

from rock_admin.api.envelope import SUCCESS_HEAD, from_exception
from rock_admin.service.dataplane import DataPlane


def data_plane(request: Request[Any, Any, Any]) -> DataPlane:
    """The data plane and record views (every role)."""
    return request.app.state.data


async def forward(
    request: Request[Any, Any, Any],
    sandbox_id: str | None,
    path: str,
    method: bytes = b"POST",
    body: bytes | None = None,
    timeout: float | None = None,
) -> Response[Any]:
    """Send the (validated) body to the rocklet as is and wrap its reply, unparsed, in the envelope; a large
    reply (a file, process output) is relayed as it arrives, never held whole in the admin. `timeout`: the
    call's own (a command's; the admin's deadline is that plus a margin)."""
    try:
        raw = await request.body() if body is None else body
        reply = await data_plane(request).open_raw(sandbox_id, method, path, raw, timeout)
    except Exception as exc:
        return from_exception(exc, sandbox_id)
    if reply.body is not None:
        return Response(SUCCESS_HEAD + reply.body + b"}", media_type="application/json", status_code=200)
    assert reply.chunks is not None
    return Stream(
        _enveloped(reply.chunks),
        media_type="application/json",
        headers={"content-length": str(len(SUCCESS_HEAD) + reply.length + 1)},
    )


async def _enveloped(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield SUCCESS_HEAD
    async for chunk in chunks:
        yield chunk
    yield b"}"
