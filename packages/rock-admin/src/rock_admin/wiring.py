"""What one admin node is made of, built from its config: the store, then (write side) the image store, the
runtime or scheduler, the lifecycle service, or (read side) the store-backed source; the data plane over
either; GEM hosting on top. The HTTP app (`api/app.py`) only serves these parts."""

from __future__ import annotations

from dataclasses import dataclass

from rock_admin.config import AdminConfig
from rock_admin.images import ImageStore
from rock_admin.runtimes import Runtime, create_runtime
from rock_admin.service.dataplane import DataPlane
from rock_admin.service.gem import GemService
from rock_admin.service.lifecycle import SandboxService
from rock_admin.service.metrics import Metrics
from rock_admin.service.store_source import StoreSource
from rock_admin.service.tokens import TokenKey
from rock_admin.store import SandboxStore, open_store

#: Sandbox states whose runtime resources are kept (a stopped sandbox restarts with its files).
KEPT_STATES = ("pending", "running", "stopped", "failed")


@dataclass
class WriteNode:
    """Roles `all` and `write`: sandboxes start, stop and live here."""

    config: AdminConfig
    store: SandboxStore
    images: ImageStore
    runtime: Runtime
    sandboxes: SandboxService
    data: DataPlane
    gem: GemService

    async def open(self) -> None:
        await self.sandboxes.open()
        # Sandboxes of this admin that no record knows (it died between creating one and saving it): gone.
        await self.runtime.remove_orphans({r["sandbox_id"] for r in self.store.list(list(KEPT_STATES))})

    async def close(self) -> None:
        await self.sandboxes.close()
        self.store.close()


@dataclass
class ReadNode:
    """Role `read`: the data plane over the shared store; lifecycle calls go to the write node."""

    config: AdminConfig
    store: SandboxStore
    source: StoreSource
    data: DataPlane
    gem: GemService

    async def open(self) -> None:
        await self.source.open()

    async def close(self) -> None:
        await self.source.aclose()
        self.store.close()


def _runtime(config: AdminConfig) -> Runtime:
    if config.scheduler == "ray":
        from rock_admin.schedulers.ray import RayScheduler  # ray is imported only when it is used

        return RayScheduler.from_config(config)
    return create_runtime(config.runtime, state_dir=config.state_dir, **config.runtime_options())


def build_node(config: AdminConfig) -> WriteNode | ReadNode:
    """The node `config.role` asks for; nothing is started until its `open()`."""
    store = open_store(config.store, config.state_dir, config.redis_url, config.redis_prefix)
    if config.role == "read":
        source = StoreSource(store)
        tokens = TokenKey.from_file(config.token_key_file)
        data = DataPlane(source, store, tokens, Metrics(), config.rocklet_call_timeout)
        return ReadNode(config, store, source, data, GemService(data))
    images = ImageStore(config.state_dir, engine=config.runtime == "docker")
    runtime = _runtime(config)
    sandboxes = SandboxService(config, store, runtime, images, Metrics())
    return WriteNode(
        config, store, images, runtime, sandboxes, sandboxes.data, GemService(sandboxes.data, sandboxes)
    )
