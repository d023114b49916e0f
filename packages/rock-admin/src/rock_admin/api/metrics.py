"""`/metrics` in Prometheus text (prometheus_client, one registry per app) and the per-operation request
counts and latencies it shows, taken for every HTTP request, refused ones too."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from litestar import Request, get
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from rock.actions import GEM_API_PREFIX, SANDBOX_API_PREFIX
from rock_admin.service.dataplane import DataPlane
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


class _Collector(Collector):
    """Reads the data plane's `Metrics` and sandbox counts at each scrape."""

    def __init__(self, svc: DataPlane) -> None:
        self.svc = svc

    def collect(self) -> Iterator[Metric]:
        m = self.svc.metrics
        requests = CounterMetricFamily(
            "rock_admin_requests", "HTTP requests by operation and status code.", labels=["op", "code"]
        )
        for (op, status), count in sorted(m.requests.items()):
            requests.add_metric([op, status], count)
        yield requests
        latency = HistogramMetricFamily(
            "rock_admin_request_seconds", "Request latency by operation.", labels=["op"]
        )
        for op in sorted(m.latency_count):
            buckets = [(str(b), c) for b, c in zip(Metrics.BUCKETS, m.latency_buckets[op], strict=True)]
            latency.add_metric([op], [*buckets, ("+Inf", m.latency_count[op])], m.latency_sum[op])
        yield latency
        sandboxes = GaugeMetricFamily(
            "rock_admin_sandboxes", "Sandboxes known to this admin by state.", labels=["state"]
        )
        counts = self.svc.counts()
        for state in ("pending", "running", "stopped", "failed"):
            sandboxes.add_metric([state], counts.get(state, 0))
        yield sandboxes
        for name, value, help_ in (
            ("rock_admin_sandbox_starts", m.starts, "Sandbox starts requested."),
            ("rock_admin_sandbox_start_failures", m.start_failures, "Sandbox starts that failed."),
            ("rock_admin_sandbox_failures", m.failures, "Sandboxes that failed (start or later)."),
            ("rock_admin_sandbox_auto_stops", m.auto_stops, "Sandboxes stopped for being idle."),
        ):
            yield CounterMetricFamily(name, help_, value)


def registry(svc: DataPlane) -> CollectorRegistry:
    """The app's own registry (not prometheus_client's global one: apps in one process do not collide)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Collector(svc))
    return reg


@get("/metrics", media_type=CONTENT_TYPE_PLAIN_0_0_4)
async def metrics(request: Request[Any, Any, Any]) -> bytes:
    return generate_latest(request.app.state.metrics)
