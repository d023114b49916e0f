"""A read node's source of sandboxes: the shared store, read through a cache refreshed on a miss or when a
rocklet cannot be reached; the activity it serves goes to the store in batches, so the write node's idle
auto-stop sees it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from rock_admin.errors import SandboxNotFoundError, ServiceError
from rock_admin.runtimes.base import Endpoint, Handle, dial
from rock_admin.runtimes.host import short_path
from rock_admin.service.dataplane import Sandbox, count_states, require_running, visible
from rock_admin.store import SandboxStore

log = logging.getLogger("rock_admin.read")
#: How often a read node writes the activity it saw to the store (one batched write, not one per request).
ACTIVITY_FLUSH_SECONDS = 1.0


class StoreSource:
    """A read node's `SandboxSource`: no runtime, no zygote; routes come from the shared store (cached)."""

    def __init__(self, store: SandboxStore) -> None:
        self.store = store
        self.cache: dict[str, Sandbox] = {}
        self._activity: dict[str, float] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()  # referenced until done (the loop keeps weak ones)

    async def open(self) -> None:
        self._flusher = asyncio.create_task(self._flush_loop())

    async def aclose(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        with contextlib.suppress(Exception):
            self.flush()
        for sb in self.cache.values():
            await sb.close_clients()

    def endpoint(self, handle: Handle) -> Endpoint:
        endpoint = dial(handle)
        # The write node shortens over-long socket paths through a directory fd of its own; so do we.
        return Endpoint(uds=short_path(endpoint.uds)) if endpoint.uds else endpoint

    def _load(self, sandbox_id: str) -> dict[str, Any]:
        record = self.store.get(sandbox_id)
        if record is None or record["state"] == "deleted":
            raise SandboxNotFoundError(f"sandbox {sandbox_id} not found")
        seen = self.store.activity([sandbox_id]).get(sandbox_id, 0.0)
        record["last_activity_time"] = max(record.get("last_activity_time", 0.0), seen)
        return record

    def _adopt(self, record: dict[str, Any]) -> Sandbox:
        """Cache `record`, keeping the cached clients while the route (handle and token) is the same."""
        old = self.cache.get(record["sandbox_id"])
        if old is not None and _route(old.record) == _route(record):
            old.record = record
            return old
        sb = self.cache[record["sandbox_id"]] = Sandbox(record)
        if old is not None:
            self._close_later(old)
        return sb

    def get(self, sandbox_id: str | None) -> Sandbox:
        """Fresh from the store (status calls must see what the write node did)."""
        if not sandbox_id:
            raise ServiceError("sandbox_id is required")
        try:
            record = self._load(sandbox_id)
        except SandboxNotFoundError:
            self._evict(sandbox_id)
            raise
        return visible(self._adopt(record))

    def running(self, sandbox_id: str | None) -> Sandbox:
        """From the cache when it holds a running route; else (a miss) from the store."""
        if sandbox_id:
            sb = self.cache.get(sandbox_id)
            if sb is not None and sb.state == "running":
                return visible(sb)
        return require_running(self.get(sandbox_id))

    async def refresh(self, sb: Sandbox) -> Sandbox | None:
        fresh = require_running(self.get(sb.id))
        return fresh if fresh is not sb else None

    def _evict(self, sandbox_id: str) -> None:
        old = self.cache.pop(sandbox_id, None)
        if old is not None:
            self._close_later(old)

    def _close_later(self, sb: Sandbox) -> None:
        task = asyncio.get_running_loop().create_task(sb.close_clients())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def touch(self, sb: Sandbox) -> None:
        now = time.time()
        sb.record["last_activity_time"] = now
        self._activity[sb.id] = now

    def known(self, record: dict[str, Any]) -> Sandbox:
        return Sandbox(record)

    async def unresponsive(self, sb: Sandbox) -> None:
        """A read node only reports: the write node's own probes decide a sandbox's fate."""

    def flush(self) -> None:
        """Write the activity seen since the last flush to the store in one batch."""
        if self._activity:
            batch, self._activity = self._activity, {}
            try:
                self.store.touch(batch)
            except Exception:
                for sid, seen in batch.items():  # keep it for the next try (the store may be restarting)
                    self._activity[sid] = max(seen, self._activity.get(sid, 0.0))
                raise

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(ACTIVITY_FLUSH_SECONDS)
            try:
                self.flush()
            except Exception as exc:
                log.warning("activity flush failed: %s: %s", type(exc).__name__, exc)

    def counts(self) -> dict[str, int]:
        return count_states(self.cache.values())


def _route(record: dict[str, Any]) -> tuple[Any, Any]:
    return record.get("handle"), record.get("token_nonce") or record.get("token")
