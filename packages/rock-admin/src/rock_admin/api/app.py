"""The admin's ASGI app: sandbox API, GEM API, `/metrics`, OpenAPI at `/schema`, API keys, structured logs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar
from litestar.openapi import OpenAPIConfig

from rock_admin import __version__
from rock_admin.api.envelope import EXCEPTION_HANDLERS
from rock_admin.api.gem import gem_router
from rock_admin.api.keys import TenantKeys
from rock_admin.api.metrics import RequestMetrics, metrics, registry
from rock_admin.api.request_id import RequestIdScope
from rock_admin.api.sandbox import hello, sandbox_router
from rock_admin.api.write_forwarder import WriteForwarder
from rock_admin.config import AdminConfig
from rock_admin.images import ImageStore
from rock_admin.runtimes import Runtime, create_runtime
from rock_admin.service.dataplane import ReadPlane
from rock_admin.service.gem import GemService
from rock_admin.service.lifecycle import Metrics, SandboxService
from rock_admin.service.tokens import TokenKey
from rock_admin.store import SandboxStore, open_store

log = logging.getLogger("rock_admin.http")


def _litestar(lifespan: Any) -> Litestar:
    return Litestar(
        route_handlers=[hello, metrics, sandbox_router, gem_router],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(title="ROCK admin", version=__version__, path="/schema"),
        debug=False,
        logging_config=None,
    )


def _wrap(app: Any, config: AdminConfig, metrics: Metrics) -> Any:
    """Outside in: request metrics (refusals counted too), the key check, then the app."""
    return RequestMetrics(TenantKeys(app, config.api_keys, config.admin_keys), metrics)


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
    app.state.metrics = registry(plane)
    app.state.gem = GemService(plane)
    app.state.config = config
    forwarder = WriteForwarder(app, config.write_url)
    return _wrap(RequestIdScope(forwarder), config, plane.metrics)


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
    app.state.metrics = registry(service)
    app.state.gem = gem
    app.state.config = config
    app.state.images = images
    return _wrap(RequestIdScope(app), config, service.metrics)
