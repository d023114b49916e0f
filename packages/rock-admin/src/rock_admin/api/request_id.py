"""Passes a client's `X-Request-ID` on to the rocklet, so that the client's retry of a call whose reply was
lost is answered from the rocklet's replay cache instead of running again (SWE-ReX semantics end to end)."""

from __future__ import annotations

import re
from typing import Any

from rock.rocklet_client import FORWARDED_REQUEST_ID

#: What is passed on verbatim (it goes into a raw header line): anything else is dropped, not forwarded.
_SAFE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class RequestIdScope:
    """ASGI wrapper: the request's `X-Request-ID`, when well-formed, for the rocklet calls it leads to."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        if value is None or not _SAFE_ID.fullmatch(value):
            await self.app(scope, receive, send)
            return
        token = FORWARDED_REQUEST_ID.set(value.decode("ascii"))
        try:
            await self.app(scope, receive, send)
        finally:
            FORWARDED_REQUEST_ID.reset(token)
