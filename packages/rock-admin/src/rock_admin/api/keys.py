"""API keys as tenants, checked before routing: each key is a tenant (`X-User-Id`/`X-Namespace` narrow it),
an admin key sees every tenant's sandboxes, no keys configured lets everyone in as the one empty tenant."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware.authentication import AuthenticationResult

from rock_admin.api.envelope import envelope_body
from rock_admin.api.portforward import refuse_handshake
from rock_admin.service.tenancy import Caller, bind, key_hash, unbind
from rocklet.auth import KeyCheck, Refused, presented_key, send_json

UNAUTHORIZED = envelope_body(
    "Failed", "invalid or missing API key (X-API-Key or Authorization: Bearer)", "unauthorized", None
)


def _as_caller(app: Any) -> Any:
    """The app, run with the authenticated caller bound (`tenancy`) for what it does."""

    async def bound(scope: Any, receive: Any, send: Any) -> None:
        if "user" not in scope:  # lifespan: no caller
            await app(scope, receive, send)
            return
        token = bind(scope["user"])
        try:
            await app(scope, receive, send)
        finally:
            unbind(token)

    return bound


class TenantKeys(KeyCheck):
    def __init__(self, app: Any, keys: list[str], admin_keys: list[str] | None = None) -> None:
        super().__init__(_as_caller(app))
        self.keys = [k.encode() for k in keys]
        self.admin_keys = [k.encode() for k in admin_keys or []]

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        caller = self._caller(connection.scope["headers"])
        if caller is None:
            raise Refused()
        return AuthenticationResult(user=caller, auth=None)

    def _caller(self, headers: list[tuple[bytes, bytes]]) -> Caller | None:
        """Who is calling; None when keys are configured and no valid one came."""
        key = b""
        user_id = namespace = ""
        for name, value in headers:
            if name == b"x-api-key":
                key = value
            elif name in (b"authorization", b"xrl-authorization"):
                # xrl-authorization: what upstream's SDK sends for SandboxConfig(xrl_authorization=KEY); a Basic
                # password: what upstream's RemoteSandboxRuntime sends for a key in its URL (`rocklet_relay`).
                key = key or presented_key([(b"authorization", value)]) or b""
            elif name == b"x-user-id":
                user_id = value.decode("latin-1")
            elif name == b"x-namespace":
                namespace = value.decode("latin-1")
        if not self.keys and not self.admin_keys:
            return Caller("", user_id, namespace)
        # every key is compared (no early exit): the time taken does not say which list a key is in
        admin = any([hmac.compare_digest(key, k) for k in self.admin_keys])
        if not admin and not any([hmac.compare_digest(key, k) for k in self.keys]):
            return None
        return Caller(key_hash(key), user_id, namespace, admin)

    async def refuse(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await refuse_handshake(scope, receive, send, 401, UNAUTHORIZED)  # port forwarding: same keys
        else:
            await send_json(send, 401, UNAUTHORIZED)
