"""The data plane: reach a running sandbox's rocklet and forward to it (sessions, commands, files, GEM steps),
and the read-only views of records (status, lists).

`DataPlane` is what every role shares; where its sandboxes come from is its `SandboxSource`. The write side's
source is `SandboxService` (roles `all` and `write`: its own memory); a read node's is `StoreSource` (role
`read`: the shared store through a cache, `service/store_source.py`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar

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
from rock_admin.runtimes.base import Endpoint, Handle
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


class SandboxSource(Protocol):
    """Where a data plane finds sandboxes and how it dials them."""

    def get(self, sandbox_id: str | None) -> Sandbox:
        """The sandbox (any state) if the caller may see it; `SandboxNotFoundError` otherwise."""
        ...

    def running(self, sandbox_id: str | None) -> Sandbox:
        """The sandbox if it is running (`SandboxNotRunningError` if not)."""
        ...

    def endpoint(self, handle: Handle) -> Endpoint:
        """Where this process dials the sandbox's rocklet."""
        ...

    def touch(self, sb: Sandbox) -> None:
        """Refresh the sandbox's idle clock (every data-plane call does)."""
        ...

    async def refresh(self, sb: Sandbox) -> Sandbox | None:
        """The rocklet did not answer: a newer route to retry on, or None (the caller re-raises). May raise
        `SandboxNotRunningError` when the sandbox turns out to be gone."""
        ...

    async def unresponsive(self, sb: Sandbox) -> None:
        """A probe of `sb` failed (`sb.unresponsive_since` says since when); the write side acts on it."""
        ...

    def known(self, record: dict[str, Any]) -> Sandbox:
        """The live object for a record read from the store (or a fresh one)."""
        ...

    def counts(self) -> dict[str, int]:
        """Sandboxes this process knows of, by state (for `/metrics`)."""
        ...


def visible(sb: Sandbox) -> Sandbox:
    """`sb`, unless the caller does not own it: then it does not exist for them (`tenancy`)."""
    if not tenancy.visible(sb.record):
        raise SandboxNotFoundError(f"sandbox {sb.id} not found")
    return sb


def count_states(sandboxes: Iterable[Sandbox]) -> dict[str, int]:
    result: dict[str, int] = {}
    for sb in sandboxes:
        result[sb.state] = result.get(sb.state, 0) + 1
    return result


def require_running(sb: Sandbox) -> Sandbox:
    if sb.state != "running" or sb.handle is None:
        raise not_running(sb)
    return sb


class DataPlane:
    """Forwarding to rocklets plus the record views, over the sandboxes of `source`."""

    def __init__(
        self,
        source: SandboxSource,
        store: SandboxStore,
        tokens: TokenKey,
        metrics: Metrics,
        call_timeout: float = 1800.0,
    ) -> None:
        self.source = source
        self.store = store
        self.tokens = tokens
        self.metrics = metrics
        #: The deadline of a rocklet call that carries no timeout of its own.
        self.call_timeout = call_timeout
        self.deadlines = Deadlines()

    def get(self, sandbox_id: str | None) -> Sandbox:
        return self.source.get(sandbox_id)

    def running(self, sandbox_id: str | None) -> Sandbox:
        return self.source.running(sandbox_id)

    def endpoint(self, handle: Handle) -> Endpoint:
        return self.source.endpoint(handle)

    def touch(self, sb: Sandbox) -> None:
        self.source.touch(sb)

    async def refresh(self, sb: Sandbox) -> Sandbox | None:
        return await self.source.refresh(sb)

    def counts(self) -> dict[str, int]:
        return self.source.counts()

    # ------------------------------------------------------------------ rocklet clients

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
            await self.source.unresponsive(sb)
        return alive

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

    def list(self, states: list[str] | None = None) -> list[Sandbox]:
        """The sandboxes the caller may see."""
        return [self.source.known(record) for record in self.store.list(states) if tenancy.visible(record)]

    def status(self, sb: Sandbox) -> SandboxStatusResponse:
        return status_view(sb.record)


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


def _version() -> str:
    from rock_admin import __version__

    return __version__


def _rocklet_version() -> str:
    import rocklet

    return getattr(rocklet, "__version__", "")
