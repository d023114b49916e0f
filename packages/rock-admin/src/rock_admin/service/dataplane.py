"""The data plane: reach a running sandbox's rocklet and forward to it (sessions, commands, files, GEM steps),
and the read-only views of records (status, lists).

`DataPlane` is what every role shares. The write side (`SandboxService`, roles `all` and `write`) resolves
sandboxes from its own memory; a read node (`ReadPlane`, role `read`) resolves them from the shared store
through a cache refreshed on a miss or when a rocklet cannot be reached, and reports activity to the store in
batches so the write node's idle auto-stop sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from rock.actions import IsAliveResponse, SandboxStatusResponse
from rock.exceptions import AuthenticationError
from rock.rocklet_client import RockletClient
from rock_admin.errors import (
    RockletTimeoutError,
    SandboxNotFoundError,
    SandboxNotRunningError,
    ServiceError,
)
from rock_admin.runtimes.base import Endpoint, Handle, dial
from rock_admin.runtimes.host import short_path
from rock_admin.service import tenancy
from rock_admin.service.deadlines import Deadlines
from rock_admin.service.metrics import Metrics
from rock_admin.service.rawhttp import JSON, RawPool, Reply
from rock_admin.service.tokens import TokenKey
from rock_admin.store import SandboxStore

log = logging.getLogger("rock_admin.dataplane")
T = TypeVar("T")

#: Connections the admin keeps per rocklet: one event loop serves them all, and httpx's pool costs grow with
#: its size, so a small pool (requests queue for a connection) is faster under heavy concurrency.
ROCKLET_CONNECTIONS = 16
#: A rocklet that cannot be reached this way was never sent the request (safe to retry after a refresh); one
#: that refuses the token did not run it either (the id may have been deleted and reused with a new token).
UNREACHABLE = (httpx.ConnectError, ConnectionRefusedError, FileNotFoundError, AuthenticationError)
#: Rocklet replies up to this size are read at once (the fast path); larger ones (files, process output) are
#: streamed through to the client, so the admin holds a chunk of them at a time.
INLINE_REPLY_BYTES = 1 << 20
#: How often a read node writes the activity it saw to the store (one batched write, not one per request).
ACTIVITY_FLUSH_SECONDS = 1.0
#: How long a health probe (`/is_alive`, on a connection of its own) may take.
PROBE_SECONDS = 2.0
#: Added to a call's own timeout (a command's) for the admin's deadline on the call.
CALL_MARGIN = 30.0


class Sandbox:
    """The in-memory side of a record: its rocklet clients and the activity clock."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self.client: RockletClient | None = None
        self.raw: RawPool | None = None  # made on first use (the hot path)
        self.prober: RawPool | None = None  # health probes: never queued behind the pool's long calls
        #: When the rocklet first failed a health probe in a row (None: it answered the last one).
        self.unresponsive_since: float | None = None
        self.ready = asyncio.Event()
        self.stopping = False
        #: Inside `runtime.start`: the launch must not be cancelled (what it made would have no handle).
        self.launching = False
        self.task: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        return self.record["sandbox_id"]

    @property
    def state(self) -> str:
        return self.record["state"]

    @property
    def handle(self) -> Handle | None:
        h = self.record.get("handle")
        return Handle.from_dict(h) if h else None

    async def close_clients(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None
        for pool in (self.raw, self.prober):
            if pool is not None:
                pool.close()
        self.raw = self.prober = None


class DataPlane(ABC):
    """Forwarding to rocklets plus the record views; subclasses say where sandboxes come from."""

    def __init__(self, store: SandboxStore, tokens: TokenKey, call_timeout: float = 1800.0) -> None:
        self.store = store
        self.tokens = tokens
        #: The deadline of a rocklet call that carries no timeout of its own.
        self.call_timeout = call_timeout
        self.deadlines = Deadlines()
        self.metrics = Metrics()

    @abstractmethod
    def get(self, sandbox_id: str | None) -> Sandbox:
        """The sandbox (any state); `SandboxNotFoundError` when there is none."""

    @abstractmethod
    def endpoint(self, handle: Handle) -> Endpoint:
        """Where this process dials the sandbox's rocklet."""

    def visible(self, sb: Sandbox) -> Sandbox:
        """`sb`, unless the caller does not own it: then it does not exist for them (`tenancy`)."""
        if not tenancy.visible(sb.record):
            raise SandboxNotFoundError(f"sandbox {sb.id} not found")
        return sb

    def touch(self, sb: Sandbox) -> None:
        """Refresh the sandbox's idle clock (every data-plane call does)."""
        sb.record["last_activity_time"] = time.time()

    async def refresh(self, sb: Sandbox) -> Sandbox | None:
        """The rocklet did not answer: a newer route to retry on, or None (the caller re-raises). May raise
        `SandboxNotRunningError` when the sandbox turns out to be gone."""
        return None

    # ------------------------------------------------------------------ rocklet clients

    def running(self, sandbox_id: str | None) -> Sandbox:
        sb = self.get(sandbox_id)
        if sb.state != "running" or sb.handle is None:
            raise not_running(sb)
        return sb

    def token(self, sb: Sandbox) -> str:
        """What the sandbox's rocklet takes as its API key (derived; the store never holds it)."""
        return self.tokens.token(sb.record)

    def connect(self, sb: Sandbox) -> RockletClient:
        if sb.client is None:
            handle = sb.handle
            assert handle is not None
            endpoint = self.endpoint(handle)
            sb.client = RockletClient(
                endpoint.url or None,
                uds=endpoint.uds or None,
                auth_token=self.token(sb),
                max_connections=ROCKLET_CONNECTIONS,
                timeout=self.call_timeout,
            )
        return sb.client

    def raw_pool(self, sb: Sandbox) -> RawPool:
        if sb.raw is None:
            handle = sb.handle
            assert handle is not None
            sb.raw = RawPool(self.endpoint(handle), self.token(sb), ROCKLET_CONNECTIONS)
        return sb.raw

    def client_for(self, sandbox_id: str | None) -> tuple[Sandbox, RockletClient]:
        """The rocklet of a running sandbox; refreshes its idle clock."""
        sb = self.running(sandbox_id)
        self.touch(sb)
        return sb, self.connect(sb)

    async def _forward(self, sandbox_id: str | None, send: Callable[[Sandbox], Awaitable[T]]) -> T:
        sb = self.running(sandbox_id)
        self.touch(sb)
        try:
            try:
                return await send(sb)
            except UNREACHABLE:
                newer = await self.refresh(sb)
                if newer is None:
                    raise
                sb = newer
                return await send(sb)
        finally:
            self.touch(sb)

    async def call(self, sandbox_id: str | None, fn: Callable[[RockletClient], Awaitable[T]]) -> T:
        return await self._forward(sandbox_id, lambda sb: fn(self.connect(sb)))

    async def post_raw(
        self,
        sandbox_id: str | None,
        path: str,
        body: bytes,
        timeout: float | None = None,
        headers: bytes = b"",
    ) -> bytes:
        """POST bytes to the rocklet of a running sandbox through the lean keep-alive client; its reply's
        bytes come back (errors raised as by `RockletClient`). `timeout`: the call's own (a command's);
        `headers`: more header lines, each ending in CRLF."""
        deadline = timeout + CALL_MARGIN if timeout else self.call_timeout
        return await self._forward(
            sandbox_id, lambda sb: self._bounded(sb, self.raw_pool(sb).post(path, body, headers), deadline)
        )

    async def _bounded(self, sb: Sandbox, call: Awaitable[T], seconds: float) -> T:
        try:
            return await self.deadlines.run(call, seconds)
        except TimeoutError:
            raise RockletTimeoutError(
                f"sandbox {sb.id}: the rocklet did not answer within {seconds:g} s (the call's deadline)"
            ) from None

    async def probe(self, sb: Sandbox) -> bool:
        """Whether the rocklet answers `/is_alive` within `PROBE_SECONDS`; tracks how long it has not."""
        if sb.prober is None:
            handle = sb.handle
            assert handle is not None
            sb.prober = RawPool(self.endpoint(handle), self.token(sb), 1)
        try:
            reply = await asyncio.wait_for(sb.prober.get("/is_alive"), PROBE_SECONDS)
            alive = json.loads(reply).get("is_alive") is True
        except Exception:  # any failure to answer is "not alive"
            alive = False
        if alive:
            sb.unresponsive_since = None
        else:
            if sb.unresponsive_since is None:
                sb.unresponsive_since = time.time()
            await self.unresponsive(sb)
        return alive

    async def unresponsive(self, sb: Sandbox) -> None:
        """A probe of `sb` failed (`sb.unresponsive_since` says since when); the write side acts on it."""

    async def open_raw(
        self,
        sandbox_id: str | None,
        method: bytes,
        path: str,
        body: bytes,
        timeout: float | None = None,
        check: bool = True,
        headers: bytes = b"",
        content_type: bytes = JSON,
    ) -> Reply:
        """Like `post_raw`, but a reply over `INLINE_REPLY_BYTES` is relayed in chunks, never held whole (the
        deadline is on its head; the chunks follow at the client's pace). `check=False`: a rocklet error reply
        comes back as it is (its status in `Reply.status`), not raised; `headers`: more header lines to send;
        `content_type`: the body's."""
        deadline = timeout + CALL_MARGIN if timeout else self.call_timeout
        return await self._forward(
            sandbox_id,
            lambda sb: self._bounded(
                sb,
                self.raw_pool(sb).open(method, path, body, INLINE_REPLY_BYTES, check, headers, content_type),
                deadline,
            ),
        )

    async def is_alive(self, sandbox_id: str | None) -> IsAliveResponse:
        try:
            sb = self.get(sandbox_id)
        except ServiceError as exc:
            return IsAliveResponse(is_alive=False, message=str(exc))
        if sb.state != "running" or sb.handle is None:
            reason = sb.record.get("failure_reason") or ""
            return IsAliveResponse(
                is_alive=False, message=f"state: {sb.state}{'; ' + reason if reason else ''}"
            )
        if await self.probe(sb):
            return IsAliveResponse(is_alive=True, message="")
        since = time.time() - (sb.unresponsive_since or time.time())
        return IsAliveResponse(
            is_alive=False,
            message=f"state: {sb.state}; the rocklet did not answer /is_alive (unresponsive for {since:.0f} s)",
        )

    # ------------------------------------------------------------------ views

    def known(self, record: dict[str, Any]) -> Sandbox:
        """The live object for a record read from the store (or a fresh one)."""
        return Sandbox(record)

    def list(self, states: list[str] | None = None) -> list[Sandbox]:
        """The sandboxes the caller may see."""
        return [self.known(record) for record in self.store.list(states) if tenancy.visible(record)]

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """Sandboxes this process knows of, by state (for `/metrics`)."""

    def status(self, sb: Sandbox) -> SandboxStatusResponse:
        return status_view(sb.record)

    async def aclose(self) -> None:
        """Release what the data plane holds (its rocklet connections)."""


def not_running(sb: Sandbox) -> SandboxNotRunningError:
    detail = f": {sb.record.get('failure_reason')}" if sb.state == "failed" else ""
    return SandboxNotRunningError(f"sandbox {sb.id} is not running (state: {sb.state}){detail}")


def status_view(rec: dict[str, Any]) -> SandboxStatusResponse:
    """A record as upstream's `SandboxStatusResponse` (plus our additions)."""
    handle = rec.get("handle") or {}
    clear = rec.get("auto_clear_seconds") or 0
    running = rec["state"] == "running"
    return SandboxStatusResponse(
        sandbox_id=rec["sandbox_id"],
        status=rec.get("status", {}),
        host_name=rec.get("host_name") or rec["sandbox_id"][:63],
        host_ip="127.0.0.1",
        is_alive=running,
        image=rec.get("image"),
        metadata={"pid": handle.get("pid"), "uds": handle.get("uds")},
        gateway_version=_version(),
        swe_rex_version=_rocklet_version(),
        user_id=rec.get("user_id"),
        experiment_id=rec.get("experiment_id"),
        namespace=rec.get("namespace"),
        cpus=rec.get("cpus"),
        memory=rec.get("memory"),
        disk=rec.get("disk"),
        state=rec["state"],
        start_time=rec.get("start_time"),
        stop_time=rec.get("stop_time"),
        create_time=rec.get("create_time"),
        delete_time=rec.get("delete_time"),
        auto_stop_time=(rec.get("last_activity_time", 0) + clear) if clear and running else None,
        state_history=rec.get("state_history", []),
        failure_reason=rec.get("failure_reason"),
        auto_clear_seconds=clear,
        last_activity_time=rec.get("last_activity_time"),
        isolation=handle.get("isolation"),
        limits_enforced=handle.get("limits_enforced"),
        limits_message=handle.get("limits_message"),
    )


class ReadPlane(DataPlane):
    """A read node's data plane: no runtime, no zygote; routes come from the shared store (cached)."""

    def __init__(self, store: SandboxStore, tokens: TokenKey, call_timeout: float = 1800.0) -> None:
        super().__init__(store, tokens, call_timeout)
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
        return self.visible(self._adopt(record))

    def running(self, sandbox_id: str | None) -> Sandbox:
        """From the cache when it holds a running route; else (a miss) from the store."""
        if sandbox_id:
            sb = self.cache.get(sandbox_id)
            if sb is not None and sb.state == "running":
                return self.visible(sb)
        return super().running(sandbox_id)

    async def refresh(self, sb: Sandbox) -> Sandbox | None:
        fresh = self.get(sb.id)
        if fresh.state != "running" or fresh.handle is None:
            raise not_running(fresh)
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
        result: dict[str, int] = {}
        for sb in self.cache.values():
            result[sb.state] = result.get(sb.state, 0) + 1
        return result


def _route(record: dict[str, Any]) -> tuple[Any, Any]:
    return record.get("handle"), record.get("token_nonce") or record.get("token")


def _version() -> str:
    from rock_admin import __version__

    return __version__


def _rocklet_version() -> str:
    import rocklet

    return getattr(rocklet, "__version__", "")
