"""`X-API-Key` check in front of everything (before routing, as upstream), as a plain ASGI wrapper.

The token may also come as `Authorization: Bearer <token>` or as the password of `Authorization: Basic`: upstream
ROCK's RemoteSandboxRuntime sends no `X-API-Key`, but a host URL that carries the token
(`http://rock:<token>@host:port`, what the admin hands out) makes its HTTP client send Basic auth.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

_DENIED = b'{"detail":"Invalid API Key"}'


def presented_key(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The token a request presents: `X-API-Key`, else a Bearer token, else a Basic password."""
    auth = None
    for k, v in headers:
        if k == b"x-api-key":
            return v
        if k == b"authorization":
            auth = v
    if auth is None:
        return None
    scheme, _, value = auth.partition(b" ")
    if scheme.lower() == b"bearer":
        return value.strip()
    if scheme.lower() == b"basic":
        try:
            return base64.b64decode(value.strip(), validate=True).partition(b":")[2]
        except (binascii.Error, ValueError):
            return None
    return None


class ApiKeyMiddleware:
    """401 `{"detail": "Invalid API Key"}` unless the presented key equals the token (missing → 401)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            key = presented_key(scope["headers"])
            if key is None or not hmac.compare_digest(key, self._token):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(_DENIED)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": _DENIED})
                return
        elif scope["type"] == "websocket":
            key = presented_key(scope["headers"])
            if key is None or not hmac.compare_digest(key, self._token):
                await send({"type": "websocket.close", "code": 4401})
                return
        await self.app(scope, receive, send)
