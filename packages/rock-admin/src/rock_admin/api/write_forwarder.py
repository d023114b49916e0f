"""A read node's hop to the write cluster: lifecycle calls (start, stop, delete, restart, GEM make/close...)
are forwarded verbatim to `write_url` (method, path, query, body, headers including API keys), so a client may
send everything to one URL. An ASGI wrapper: the request is relayed before any routing or body parsing."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from rock.actions import CODE_INTERNAL, SANDBOX_API_PREFIX
from rock_admin.api.envelope import failed_body

#: Paths only the write cluster serves (lifecycle and scheduling).
LIFECYCLE = re.compile(
    rf"^{SANDBOX_API_PREFIX}/(start|start_async|stop|delete|restart|commit|sandboxes/[^/]+/(restart|archive))$"
    r"|^/apis/v1/envs/gem/(make|close)$"
)
#: Hop-by-hop headers (RFC 9110 §7.6.1) and those httpx sets itself.
_HOP = {b"host", b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade", b"content-length"}
#: httpx hands the body back decoded, so its encoding header no longer applies.
_REPLY_SKIP = _HOP | {b"content-encoding"}


def is_lifecycle(path: str) -> bool:
    return LIFECYCLE.match(path) is not None


class WriteForwarder:
    """Relays lifecycle requests to the write node and everything else to the read node's own app."""

    def __init__(self, app: Any, write_url: str) -> None:
        self.app = app
        self.write_url = write_url
        # `start` waits up to 85 s for the sandbox: no read timeout shorter than that.
        self.http = httpx.AsyncClient(
            base_url=write_url,
            timeout=httpx.Timeout(120.0, connect=5.0),
            limits=httpx.Limits(max_connections=256),
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not is_lifecycle(scope["path"]):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k not in _HOP]
        query = scope.get("query_string", b"")
        url = scope["path"] + ("?" + query.decode("latin-1") if query else "")
        try:
            reply = await self.http.request(scope["method"], url, content=bytes(body), headers=headers)
        except httpx.HTTPError as exc:
            await _send(send, *_unreachable(scope["path"], self.write_url, exc))
            return
        out = [(k, v) for k, v in reply.headers.raw if k.lower() not in _REPLY_SKIP]
        await _send(send, reply.status_code, reply.content, out)

    async def aclose(self) -> None:
        await self.http.aclose()


def _unreachable(path: str, write_url: str, exc: Exception) -> tuple[int, bytes]:
    """ROCK's Failed envelope (HTTP 200, as every sandbox API answer) or GEM's `{"detail"}` with a 502."""
    message = f"the write node at {write_url} did not answer: {type(exc).__name__}: {exc}"
    if path.startswith(SANDBOX_API_PREFIX):
        return 200, failed_body(message, CODE_INTERNAL)
    return 502, json.dumps({"detail": message}).encode()


async def _send(
    send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = list(headers or [(b"content-type", b"application/json")])
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
