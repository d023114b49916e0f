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
from rock_admin.service.metrics import Metrics
from rock_admin.wiring import ReadNode, WriteNode, build_node

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


def _create_read_app(node: ReadNode) -> Any:
    """A read node: the data plane over the shared store, lifecycle calls relayed to `write_url`."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await node.open()
        log.info("rock-admin read node ready", extra={"write_url": node.config.write_url})
        try:
            yield
        finally:
            await node.close()
            await forwarder.aclose()

    app = _serve(lifespan, node)
    forwarder = WriteForwarder(app, node.config.write_url)
    return _wrap(RequestIdScope(forwarder), node.config, node.data.metrics)


def _create_write_app(node: WriteNode) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await node.open()
        log.info("rock-admin ready", extra={"state_dir": node.config.state_dir})
        try:
            yield
        finally:
            await node.close()

    app = _serve(lifespan, node)
    app.state.sandboxes = node.sandboxes
    app.state.images = node.images
    return _wrap(RequestIdScope(app), node.config, node.data.metrics)


def _serve(lifespan: Any, node: WriteNode | ReadNode) -> Litestar:
    app = _litestar(lifespan)
    app.state.data = node.data
    app.state.metrics = registry(node.data)
    app.state.gem = node.gem
    app.state.config = node.config
    return app


def create_app(config: AdminConfig | None = None) -> Any:
    """Build the admin app. The node's parts (`wiring`) open in the app's lifespan (and close with it)."""
    node = build_node(config or AdminConfig.load())
    return _create_read_app(node) if isinstance(node, ReadNode) else _create_write_app(node)
