"""The admin's ASGI app: sandbox API, GEM API, `/metrics`, OpenAPI at `/schema`, API keys, structured logs."""

from __future__ import annotations

import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, MediaType, Request, get
from litestar.openapi import OpenAPIConfig

from rock.actions import GEM_API_PREFIX, SANDBOX_API_PREFIX
from rock_admin import __version__
from rock_admin.api.envelope import EXCEPTION_HANDLERS, envelope_body
from rock_admin.api.gem import gem_router
from rock_admin.api.portforward import refuse_handshake
from rock_admin.api.request_id import RequestIdScope
from rock_admin.api.sandbox import hello, sandbox_router
from rock_admin.api.write_forwarder import WriteForwarder
from rock_admin.config import AdminConfig
from rock_admin.images import ImageStore
from rock_admin.runtimes import Runtime, create_runtime
from rock_admin.service.dataplane import DataPlane, ReadPlane
from rock_admin.service.gem import GemService
from rock_admin.service.lifecycle import Metrics, SandboxService
from rock_admin.service.tenancy import Caller, bind, key_hash, unbind
from rock_admin.service.tokens import TokenKey
from rock_admin.store import SandboxStore, open_store
from rocklet.auth import presented_key

log = logging.getLogger("rock_admin.http")


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


_UNAUTHORIZED = envelope_body(
    "Failed", "invalid or missing API key (X-API-Key or Authorization: Bearer)", "unauthorized", None
)


class Middleware:
    """API keys (when configured), the caller each request is served for (`tenancy`), and per-operation
    request counts/latencies, as a plain ASGI wrapper."""

    def __init__(
        self, app: Any, keys: list[str], metrics: Metrics, admin_keys: list[str] | None = None
    ) -> None:
        self.app = app
        self.keys = [k.encode() for k in keys]
        self.admin_keys = [k.encode() for k in admin_keys or []]
        self.metrics = metrics

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

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        caller = self._caller(scope["headers"])
        if scope["type"] == "websocket":
            if caller is None:
                await refuse_handshake(scope, receive, send, 401, _UNAUTHORIZED)  # port forwarding: same keys
                return
            bound = bind(caller)
            try:
                await self.app(scope, receive, send)
            finally:
                unbind(bound)
            return
        if caller is None:
            body = _UNAUTHORIZED
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            self.metrics.observe(_op(scope["path"]), "401", 0.0)
            return
        status = [0]
        started = time.perf_counter()

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        bound = bind(caller)
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            unbind(bound)
            self.metrics.observe(_op(scope["path"]), str(status[0] or 500), time.perf_counter() - started)


def render_metrics(svc: DataPlane) -> str:
    m = svc.metrics
    lines = [
        "# HELP rock_admin_requests_total HTTP requests by operation and status code.",
        "# TYPE rock_admin_requests_total counter",
    ]
    for (op, status), count in sorted(m.requests.items()):
        lines.append(f'rock_admin_requests_total{{op="{op}",code="{status}"}} {count}')
    lines += [
        "# HELP rock_admin_request_seconds Request latency by operation.",
        "# TYPE rock_admin_request_seconds histogram",
    ]
    for op in sorted(m.latency_count):
        cumulative = 0
        for bound, count in zip(Metrics.BUCKETS, m.latency_buckets[op], strict=True):
            cumulative = count
            lines.append(f'rock_admin_request_seconds_bucket{{op="{op}",le="{bound}"}} {cumulative}')
        lines.append(f'rock_admin_request_seconds_bucket{{op="{op}",le="+Inf"}} {m.latency_count[op]}')
        lines.append(f'rock_admin_request_seconds_sum{{op="{op}"}} {m.latency_sum[op]:.6f}')
        lines.append(f'rock_admin_request_seconds_count{{op="{op}"}} {m.latency_count[op]}')
    lines += [
        "# HELP rock_admin_sandboxes Sandboxes known to this admin by state.",
        "# TYPE rock_admin_sandboxes gauge",
    ]
    counts = svc.counts()
    for state in ("pending", "running", "stopped", "failed"):
        lines.append(f'rock_admin_sandboxes{{state="{state}"}} {counts.get(state, 0)}')
    for name, value, help_ in (
        ("rock_admin_sandbox_starts_total", m.starts, "Sandbox starts requested."),
        ("rock_admin_sandbox_start_failures_total", m.start_failures, "Sandbox starts that failed."),
        ("rock_admin_sandbox_failures_total", m.failures, "Sandboxes that failed (start or later)."),
        ("rock_admin_sandbox_auto_stops_total", m.auto_stops, "Sandboxes stopped for being idle."),
    ):
        lines += [f"# HELP {name} {help_}", f"# TYPE {name} counter", f"{name} {value}"]
    return "\n".join(lines) + "\n"


@get("/metrics", media_type=MediaType.TEXT)
async def metrics(request: Request[Any, Any, Any]) -> str:
    return render_metrics(request.app.state.data)


def _litestar(lifespan: Any) -> Litestar:
    return Litestar(
        route_handlers=[hello, metrics, sandbox_router, gem_router],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(title="ROCK admin", version=__version__, path="/schema"),
        debug=False,
        logging_config=None,
    )


def _create_read_app(config: AdminConfig, store: SandboxStore) -> Any:
    """A read node: the data plane over the shared store, lifecycle calls relayed to `write_url`."""
    plane = ReadPlane(store, TokenKey.from_file(config.token_key_file), config.rocklet_call_timeout)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await plane.open()
        log.info("rock-admin read node ready", extra={"write_url": config.write_url})
        try:
            yield
        finally:
            await plane.aclose()
            await forwarder.aclose()
            store.close()

    app = _litestar(lifespan)
    app.state.data = plane
    app.state.gem = GemService(plane)
    app.state.config = config
    forwarder = WriteForwarder(app, config.write_url)
    return Middleware(RequestIdScope(forwarder), config.api_keys, plane.metrics, config.admin_keys)


#: Sandbox states whose runtime resources are kept (a stopped sandbox restarts with its files).
KEPT_STATES = ("pending", "running", "stopped", "failed")


def _docker_options(config: AdminConfig) -> dict[str, Any]:
    if config.runtime != "docker":
        return {}
    return {
        "docker_host": config.docker_host,
        "network": config.docker_network,
        "concurrency": config.docker_concurrency,
    }


def create_app(config: AdminConfig | None = None) -> Any:
    """Build the admin app. The runtime and store open in the app's lifespan (and close with it)."""
    config = config or AdminConfig.load()
    store = open_store(config.store, config.state_dir, config.redis_url, config.redis_prefix)
    if config.role == "read":
        return _create_read_app(config, store)
    images = ImageStore(config.state_dir, engine=config.runtime == "docker")
    if config.scheduler == "ray":
        from rock_admin.schedulers.ray import RayScheduler  # ray is imported only when it is used

        runtime: Runtime = RayScheduler.from_config(config)
    else:
        runtime = create_runtime(
            config.runtime,
            state_dir=config.state_dir,
            isolation=config.isolation,
            hide_paths=config.hide_paths,
            userns=config.userns,
            userns_base=config.userns_base,
            **_docker_options(config),
        )
    service = SandboxService(config, store, runtime, images)
    gem = GemService(service, service)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await service.open()
        # Sandboxes of this admin that no record knows (it died between creating one and saving it): gone.
        await runtime.remove_orphans({r["sandbox_id"] for r in store.list(list(KEPT_STATES))})
        log.info("rock-admin ready", extra={"state_dir": config.state_dir})
        try:
            yield
        finally:
            await service.close()
            store.close()

    app = _litestar(lifespan)
    app.state.sandboxes = service
    app.state.data = service
    app.state.gem = gem
    app.state.config = config
    app.state.images = images
    return Middleware(RequestIdScope(app), config.api_keys, service.metrics, config.admin_keys)
