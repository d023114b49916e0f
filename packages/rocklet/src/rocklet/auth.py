"""`X-API-Key` check in front of everything (before routing, as upstream), as a plain ASGI wrapper."""

from __future__ import annotations

import hmac
from typing import Any

_DENIED = b'{"detail":"Invalid API Key"}'


class ApiKeyMiddleware:
    """401 `{"detail": "Invalid API Key"}` unless the `X-API-Key` header equals the token (missing → 401)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            key = next((v for k, v in scope["headers"] if k == b"x-api-key"), None)
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
            key = next((v for k, v in scope["headers"] if k == b"x-api-key"), None)
            if key is None or not hmac.compare_digest(key, self._token):
                await send({"type": "websocket.close", "code": 4401})
                return
        await self.app(scope, receive, send)
