"""`X-API-Key` check in front of everything (before routing, as upstream), on Litestar's authentication middleware.

The token may also come as `Authorization: Bearer <token>` or as the password of `Authorization: Basic`: upstream
ROCK's RemoteSandboxRuntime sends no `X-API-Key`, but a host URL that carries the token
(`http://rock:<token>@host:port`, what the admin hands out) makes its HTTP client send Basic auth.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from abc import abstractmethod
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.authentication import AbstractAuthenticationMiddleware, AuthenticationResult

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


class Refused(NotAuthorizedException):
    """No valid key: raised by `authenticate_request`, answered by `KeyCheck.refuse`."""


class KeyCheck(AbstractAuthenticationMiddleware):
    """Litestar's authentication middleware as a wrapper around the whole app, so the key is checked before
    routing (as upstream: an unknown path without a key is 401, not 404). Nothing is excluded, health routes
    and `/metrics` included, and no method (OPTIONS too)."""

    def __init__(self, app: Any) -> None:
        super().__init__(app, exclude=None, exclude_http_methods=[])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except Refused:
            await self.refuse(scope, receive, send)

    @abstractmethod
    async def refuse(self, scope: Any, receive: Any, send: Any) -> None:
        """Answer a request (or WebSocket handshake) that came without a valid key."""


async def send_json(send: Any, status: int, body: bytes) -> None:
    """A whole JSON reply, sent as raw ASGI messages (before Litestar's app)."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ApiKeyMiddleware(KeyCheck):
    """401 `{"detail": "Invalid API Key"}` unless the presented key equals the token (missing → 401); a
    WebSocket without it is closed with 4401."""

    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self._token = token.encode()

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        key = presented_key(connection.scope["headers"])
        if key is None or not hmac.compare_digest(key, self._token):
            raise Refused()
        return AuthenticationResult(user=None, auth=None)

    async def refuse(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401})
        else:
            await send_json(send, 401, _DENIED)
