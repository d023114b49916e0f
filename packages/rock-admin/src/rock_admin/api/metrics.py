"""Per-operation request counts and latencies (`Metrics.observe`) for every HTTP request, refused ones too."""

from __future__ import annotations

import time
from typing import Any

from rock.actions import GEM_API_PREFIX, SANDBOX_API_PREFIX
from rock_admin.service.metrics import Metrics


def _op(path: str) -> str:
    for prefix, name in ((SANDBOX_API_PREFIX, "sandbox"), (GEM_API_PREFIX, "gem")):
        if path.startswith(prefix + "/"):
            rest = path[len(prefix) + 1 :].split("/")
            if rest[0] == "processes":
                return f"{name}.processes"
            if rest[0] == "sandboxes":
                return f"{name}.sandboxes.{rest[-1]}" if len(rest) > 2 else f"{name}.sandboxes"
            return f"{name}.{rest[0]}"
    return {"/": "hello", "/metrics": "metrics"}.get(path, "other")


class RequestMetrics:
    """ASGI wrapper: each HTTP request's operation, status code and seconds into `metrics`."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [0]
        started = time.perf_counter()

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.observe(_op(scope["path"]), str(status[0] or 500), time.perf_counter() - started)
