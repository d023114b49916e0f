"""The sandbox lifecycle: pending → running → stopped → deleted (and failed), with history, idle auto-stop,
startup timeout, and failures surfaced the moment they happen (a pidfd per sandbox, no polling).

Every transition is written to the store before it is acted on by clients, so an admin restart (even after
`kill -9`) finds every record; running sandboxes outlive the admin and are adopted again on start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
import uuid
from typing import Any

from rock.actions import SandboxStartRequest
from rock_admin.config import AdminConfig, AdminConfigError, host_pid_max, parse_size
from rock_admin.errors import LaunchError, SandboxNotFoundError, SandboxNotRunningError, ServiceError
from rock_admin.images import ImageStore, UnknownImageError
from rock_admin.runtimes import Endpoint, Handle, Runtime, SandboxSpec
from rock_admin.service import tenancy, tokens
from rock_admin.service.dataplane import DataPlane, Sandbox, count_states, require_running, visible
from rock_admin.service.metrics import Metrics
from rock_admin.service.tokens import TokenKey
from rock_admin.store import SandboxStore

log = logging.getLogger("rock_admin.lifecycle")
#: Re-exported: callers import these from here.
__all__ = ["Metrics", "SandboxNotFoundError", "SandboxNotRunningError", "SandboxService", "ServiceError"]

#: Allowed transitions: event → (from states, to state).
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "alive": (("pending",), "running"),
    "stop": (("pending", "running"), "stopped"),
    "fail": (("pending", "running"), "failed"),
    "restart": (("stopped", "failed"), "pending"),
    "delete": (("stopped", "failed"), "deleted"),
}
LIVE_STATES = ("pending", "running")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
#: Docker's limit on an image reference's name; printable ASCII without spaces.
MAX_IMAGE = 255
_IMAGE = re.compile(r"[!-~]+")
#: The smallest CPU quota the kernel takes (1 ms per 100 ms period).
MIN_CPUS = 0.01


def _disk_bytes(disk: str | None) -> int:
    """A record's `disk` in bytes; 0 (no limit) for records older than its validation that hold no size."""
    try:
        return parse_size(disk, "disk") if disk else 0
    except AdminConfigError:
        return 0


HISTORY_KEPT = 100


def _starting_status(now: float) -> dict[str, Any]:
    """Upstream's start phases of a sandbox being (re)started: the image is local, the launch is under way."""
    return {
        "image_pull": {"status": "success", "message": "local image", "started_at": now, "completed_at": now},
        "docker_run": {"status": "running", "message": "starting", "started_at": now},
    }


class SandboxService:
    """Lifecycle and scheduling (roles `all` and `write`). Its sandboxes live in its memory, so it is the
    `SandboxSource` of this node's data plane (`self.data`), which it also uses to reach its rocklets."""

    def __init__(
        self,
        config: AdminConfig,
        store: SandboxStore,
        runtime: Runtime,
        images: ImageStore,
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.data = DataPlane(
            self, store, TokenKey.from_file(config.token_key_file), metrics, config.rocklet_call_timeout
        )
        self.config = config
        self.runtime = runtime
        self.images = images
        self.sandboxes: dict[str, Sandbox] = {}
        self._scanner: asyncio.Task[None] | None = None
        self._health: asyncio.Task[None] | None = None
        self.max_memory = parse_size(config.max_memory, "max_memory")
        self.pids_budget = _pids_budget(config)

    # ------------------------------------------------------------------ service start/stop

    async def open(self) -> None:
        """Start the zygote, adopt the sandboxes a previous admin left running, start the idle scan."""
        ensure = getattr(self.runtime, "ensure_zygote", None)
        if ensure is not None:
            await ensure()
        for record in self.store.list(list(LIVE_STATES)):
            sb = Sandbox(record)
            self.sandboxes[sb.id] = sb
            handle = sb.handle
            if handle is None or not self.runtime.is_running(handle):
                reason = "the sandbox's processes ended while the admin was down"
                if handle is not None:
                    reason += f": {self.runtime.exit_reason(handle)}"
                self._transition(sb, "fail", reason)
                continue
            self.runtime.watch(handle, lambda h, sb=sb: self._on_exit(sb, h))
            if sb.state == "pending":
                sb.task = asyncio.create_task(self._wait_alive(sb, handle))
            else:
                sb.ready.set()
            log.info("adopted sandbox %s (%s)", sb.id, sb.state)
        self._scanner = asyncio.create_task(self._scan_loop())
        if self.config.health_interval > 0:
            self._health = asyncio.create_task(self._health_loop())

    async def close(self) -> None:
        """Stop serving; the sandboxes keep running (the next admin adopts them)."""
        for task in (self._scanner, self._health):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.config.stop_on_exit:
            for sb in list(self.sandboxes.values()):
                if sb.state in LIVE_STATES:
                    with contextlib.suppress(Exception):
                        await self.stop(sb.id, "admin shut down (stop_on_exit)")
        for sb in list(self.sandboxes.values()):
            # What a launch in flight made gets its handle recorded; only a pending one is cut short.
            await self._settle_launch(sb, cancel=sb.state == "pending")
            await sb.close_clients()
        if self.config.stop_on_exit:
            stop_zygote = getattr(self.runtime, "stop_zygote", None)
            if stop_zygote is not None:
                stop_zygote()
        await self.runtime.aclose()

    # ------------------------------------------------------------------ records

    def _save(self, sb: Sandbox) -> None:
        self.store.put(sb.record)

    def _transition(self, sb: Sandbox, event: str, reason: str = "") -> None:
        sources, target = TRANSITIONS[event]
        current = sb.state
        if current not in sources:
            raise ServiceError(f"sandbox {sb.id}: cannot {event} from state {current}")
        now = time.time()
        rec = sb.record
        rec["state"] = target
        history = rec.setdefault("state_history", [])
        history.append(
            {"from_state": current, "to_state": target, "event": event, "timestamp": now, "reason": reason}
        )
        del history[:-HISTORY_KEPT]
        phase = rec.setdefault("status", {}).setdefault("docker_run", {"status": "waiting", "message": ""})
        if target == "running":
            rec["start_time"] = now
            phase.update(status="success", message="rocklet is alive", completed_at=now)
        elif target == "stopped":
            rec["stop_time"] = now
            rec["stop_reason"] = reason
        elif target == "failed":
            rec["stop_time"] = now
            rec["failure_reason"] = reason
            failed_phase = "timeout" if reason.startswith("startup timeout") else "failed"
            if phase.get("status") != "success":
                phase.update(status=failed_phase, message=reason, completed_at=now)
            self.metrics.failures += 1
        elif target == "deleted":
            rec["delete_time"] = now
        elif target == "pending":
            rec["failure_reason"] = None
            rec["status"] = _starting_status(now)
        self._save(sb)
        log.info("sandbox %s: %s → %s (%s)%s", sb.id, current, target, event, f": {reason}" if reason else "")

    def get(self, sandbox_id: str | None) -> Sandbox:
        if not sandbox_id:
            raise ServiceError("sandbox_id is required")
        sb = self.sandboxes.get(sandbox_id)
        if sb is not None:
            return visible(sb)
        record = self.store.get(sandbox_id)
        if record is None:
            raise SandboxNotFoundError(f"sandbox {sandbox_id} not found")
        sb = Sandbox(record)
        if record["state"] != "deleted":
            self.sandboxes[sandbox_id] = sb
        return visible(sb)

    # ------------------------------------------------------------------ start

    def _validate(self, req: SandboxStartRequest) -> dict[str, Any]:
        try:
            memory_bytes = parse_size(req.memory, "memory")
        except AdminConfigError as exc:
            raise ServiceError(str(exc)) from None
        if memory_bytes > self.max_memory:
            raise ServiceError(
                f"memory={req.memory} exceeds the maximum allowed per sandbox ({self.config.max_memory})"
            )
        if memory_bytes < 16 * 1024 * 1024:
            raise ServiceError(f"memory={req.memory} is below the minimum of 16m")
        try:
            if parse_size(req.disk, "disk") < 16 * 1024 * 1024:
                raise ServiceError(f"disk={req.disk} is below the minimum of 16m")
        except AdminConfigError as exc:
            raise ServiceError(str(exc)) from None
        for name, value in (("cpus", req.cpus), ("limit_cpus", req.limit_cpus)):
            if value is None or (name == "limit_cpus" and not value):
                continue
            if not (value > 0) or math.isinf(value):
                raise ServiceError(f"{name}={value} must be a positive number")
            if value < MIN_CPUS:
                raise ServiceError(f"{name}={value:g} is below the minimum of {MIN_CPUS:g}")
        cpus = req.limit_cpus if req.limit_cpus else req.cpus
        if cpus > self.config.max_cpus:
            raise ServiceError(
                f"cpus={cpus} exceeds the maximum allowed per sandbox ({self.config.max_cpus:g})"
            )
        if req.num_gpus:
            raise ServiceError(
                "num_gpus: GPUs are not supported by the process runtime (not implemented yet)"
            )
        if req.auto_archive_seconds is not None and req.auto_delete_seconds is not None:
            raise ServiceError("auto_archive_seconds and auto_delete_seconds cannot be set together")
        if len(req.image) > MAX_IMAGE or not _IMAGE.fullmatch(req.image):
            raise ServiceError(
                f"image: expected a name like 'python:3.11' (at most {MAX_IMAGE} printable characters, no "
                f"spaces), got {req.image[:80]!r}{'...' if len(req.image) > 80 else ''}"
            )
        image_error = None
        try:
            self.images.get(req.image)
        except UnknownImageError as exc:  # as upstream: the start is accepted, its image_pull phase fails
            image_error = str(exc)
        except OSError as exc:  # the message names a host path: say only what failed
            raise ServiceError(f"image {req.image!r}: cannot be looked up ({exc.strerror})") from None
        if req.sandbox_id is not None and not _ID.fullmatch(req.sandbox_id):
            raise ServiceError(
                f"sandbox_id {req.sandbox_id!r}: use 1-128 letters, digits, '_', '.', '-' (starting with a letter or digit)"
            )
        if req.auto_clear_seconds is not None:
            auto_clear = float(req.auto_clear_seconds)
        elif req.auto_clear_time_minutes is not None:
            auto_clear = req.auto_clear_time_minutes * 60.0
        elif req.auto_clear_time is not None:
            auto_clear = req.auto_clear_time * 60.0
        else:
            auto_clear = self.config.auto_clear_seconds
        if auto_clear < 0 or math.isnan(auto_clear):
            raise ServiceError(f"auto_clear_seconds={auto_clear} must be >= 0 (0 = never)")
        startup_timeout = (
            req.startup_timeout if req.startup_timeout is not None else self.config.startup_timeout
        )
        if not (startup_timeout > 0):
            raise ServiceError(f"startup_timeout={startup_timeout} must be positive")
        return {
            "memory_bytes": memory_bytes,
            "cpus_limit": cpus,
            "image_error": image_error,
            "auto_clear_seconds": auto_clear,
            "startup_timeout": float(startup_timeout),
        }

    def _check_pids(self, pids_max: int) -> None:
        """Refuse a start whose pids limit would take the sandboxes' total past `pids_budget` (the host keeps
        the rest: fork bombs in every sandbox at once cannot exhaust its pids)."""
        if self.pids_budget is None:
            return
        live = [sb for sb in self.sandboxes.values() if sb.state in LIVE_STATES]
        held = sum(sb.record.get("pids_max", self.config.pids_max) for sb in live)
        if held + pids_max > self.pids_budget:
            raise ServiceError(
                f"pids_budget: {len(live)} live sandboxes hold {held} of the host's budget of "
                f"{self.pids_budget} pids; another needs {pids_max} (pids_max). Stop a sandbox, or lower "
                "pids_max / raise pids_budget (kernel.pid_max) in the admin's config"
            )

    async def start(self, req: SandboxStartRequest, headers: dict[str, str] | None = None) -> Sandbox:
        """Record the sandbox as pending and start it in the background (`start_async`)."""
        checked = self._validate(req)
        self._check_pids(self.config.pids_max)
        headers = headers or {}
        now = time.time()
        sandbox_id = req.sandbox_id or uuid.uuid4().hex
        record: dict[str, Any] = {
            "sandbox_id": sandbox_id,
            "state": "pending",
            "image": req.image,
            "memory": req.memory,
            "cpus": req.cpus,
            "limit_cpus": req.limit_cpus,
            "disk": req.disk,
            "memory_bytes": checked["memory_bytes"],
            "cpus_limit": checked["cpus_limit"],
            "auto_clear_seconds": checked["auto_clear_seconds"],
            "startup_timeout": checked["startup_timeout"],
            "pids_max": self.config.pids_max,
            "env": req.env or {},
            "pull": req.pull,
            "create_time": now,
            "last_activity_time": now,
            "user_id": headers.get("x-user-id"),
            "experiment_id": headers.get("x-experiment-id"),
            "namespace": headers.get("x-namespace"),
            "cluster": headers.get("x-cluster"),
            "owner": tenancy.owner_of_new(),
            "token_nonce": tokens.new_nonce(),
            "state_history": [
                {"from_state": None, "to_state": "pending", "event": "create", "timestamp": now, "reason": ""}
            ],
            "status": _starting_status(now),
        }
        if not self.store.insert_new(record):
            raise ServiceError(f"sandbox_id {sandbox_id!r} already exists")
        sb = Sandbox(record)
        self.sandboxes[sandbox_id] = sb
        self.metrics.starts += 1
        if checked["image_error"]:
            record["status"]["image_pull"].update(status="failed", message=checked["image_error"])
            self.metrics.start_failures += 1
            self._fail(sb, checked["image_error"])
            return sb
        sb.task = asyncio.create_task(self._launch(sb))
        return sb

    async def _launch(self, sb: Sandbox) -> None:
        rec = sb.record
        spec = SandboxSpec(
            sandbox_id=sb.id,
            image=self.images.get(rec["image"]),
            memory_bytes=rec["memory_bytes"],
            cpus=rec["cpus_limit"],
            pids_max=rec.get("pids_max", self.config.pids_max),
            token=self.data.token(sb),
            env=rec.get("env") or {},
            pull=rec.get("pull", "missing"),
            disk_bytes=_disk_bytes(rec.get("disk")),
        )
        sb.launching = True
        try:
            handle = await self.runtime.start(spec)
        except (LaunchError, OSError) as exc:
            self.metrics.start_failures += 1
            self._fail(sb, f"sandbox setup failed: {exc}")
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave a sandbox pending for ever
            self.metrics.start_failures += 1
            log.exception("start of %s failed", sb.id)
            self._fail(sb, f"sandbox setup failed: {type(exc).__name__}: {exc}")
            return
        finally:
            sb.launching = False
        rec["handle"] = handle.to_dict()
        rec["host_name"] = sb.id[:63]
        self._save(sb)
        if sb.stopping or sb.state != "pending":  # stopped while starting
            await self.runtime.stop(handle)
            return
        self.runtime.watch(handle, lambda h: self._on_exit(sb, h))
        try:
            await self._wait_alive(sb, handle)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave a sandbox pending for ever
            log.exception("waiting for %s failed", sb.id)
            self._fail(sb, f"waiting for the rocklet failed: {type(exc).__name__}: {exc}")
            await self.runtime.stop(handle)

    async def _wait_alive(self, sb: Sandbox, handle: Handle) -> None:
        deadline = sb.record["create_time"] + sb.record["startup_timeout"]
        if sb.record.get("state_history"):
            deadline = sb.record["state_history"][-1]["timestamp"] + sb.record["startup_timeout"]
        delay = 0.005
        while sb.state == "pending" and not sb.stopping:
            remaining = deadline - time.time()
            if remaining <= 0:
                self.metrics.start_failures += 1
                self._fail(
                    sb,
                    f"startup timeout: the rocklet did not answer within {sb.record['startup_timeout']:g} s",
                )
                await self.runtime.stop(handle)
                return
            # The socket listens before the rocklet serves: this call waits in its backlog until it does.
            try:
                reply = await asyncio.wait_for(self.data.raw_pool(sb).get("/is_alive"), min(remaining, 10.0))
                is_alive = json.loads(reply).get("is_alive") is True
            except Exception:  # not answering (yet): any error is "not alive"; death is the pidfd's to report
                is_alive = False
            if is_alive:
                if sb.state == "pending" and not sb.stopping:
                    self._transition(sb, "alive")
                    sb.record["last_activity_time"] = time.time()
                    sb.ready.set()
                return
            await asyncio.sleep(delay)
            # a rocklet that binds its socket late (a container's) is seen within 20 ms of answering;
            # a connect to a socket not there yet costs microseconds
            delay = min(delay * 2, 0.02)

    def _fail(self, sb: Sandbox, reason: str) -> None:
        if sb.state in LIVE_STATES:
            self._transition(sb, "fail", reason)
        sb.ready.set()

    def _on_exit(self, sb: Sandbox, handle: Handle) -> None:
        """The sandbox's init process is gone: unless we stopped it, the sandbox failed; say why."""
        if sb.stopping or sb.state not in LIVE_STATES:
            return
        if sb.record.get("handle", {}).get("pid") != handle.pid:
            return
        reason = self.runtime.exit_reason(handle)
        self.metrics.start_failures += sb.state == "pending"
        self._fail(sb, reason)
        asyncio.get_running_loop().create_task(self.runtime.stop(handle))  # release its limits

    async def wait_ready(self, sb: Sandbox, timeout: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(sb.ready.wait(), timeout)

    # ------------------------------------------------------------------ stop / delete / restart

    async def _settle_launch(self, sb: Sandbox, cancel: bool = False) -> None:
        """Wait for the sandbox's launch task to end. Inside `runtime.start` it is never cancelled: what the
        runtime already made (processes, cgroups) would have no handle to end them, and `_launch` stops them
        itself once it sees the sandbox is no longer pending. With `cancel`, a launch waiting for the rocklet
        is cut short (the caller stops the sandbox); a launch that failed is left to release its limits."""
        task = sb.task
        if task is None or task.done() or task is asyncio.current_task():
            return
        if cancel and not sb.launching:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.shield(task)

    async def stop(self, sandbox_id: str, reason: str = "stopped by request") -> Sandbox:
        """End the sandbox whatever state it is in; returns once its processes and limits are gone."""
        sb = self.get(sandbox_id)
        if sb.state not in LIVE_STATES:
            await self._settle_launch(sb)  # a stop racing another stop returns when the first is done
            return sb
        sb.stopping = True
        try:
            self._transition(sb, "stop", reason)
            await self._settle_launch(sb, cancel=True)
            handle = sb.handle
            if handle is not None:
                await self.runtime.stop(handle)
            await sb.close_clients()
        finally:
            sb.stopping = False
            sb.ready.set()
        return sb

    async def delete(self, sandbox_id: str) -> Sandbox | None:
        try:
            sb = self.get(sandbox_id)
        except SandboxNotFoundError:
            return None  # idempotent, as upstream
        if sb.state == "deleted":
            return sb
        if sb.state in LIVE_STATES:
            await self.stop(sandbox_id, "stopped for deletion")
        await self._settle_launch(sb)
        if sb.state == "deleted":  # a concurrent delete finished first
            return sb
        handle = sb.handle
        if handle is not None:
            await asyncio.to_thread(self.runtime.remove, handle)
        self._transition(sb, "delete")
        self.sandboxes.pop(sb.id, None)
        return sb

    async def restart(self, sandbox_id: str) -> Sandbox:
        sb = self.get(sandbox_id)
        if sb.state in LIVE_STATES:
            return sb
        if sb.state not in TRANSITIONS["restart"][0]:
            raise ServiceError(f"sandbox {sandbox_id}: cannot restart from state {sb.state}")
        self._check_pids(sb.record.get("pids_max", self.config.pids_max))
        sb.ready = asyncio.Event()
        self._transition(sb, "restart")
        sb.record["last_activity_time"] = time.time()
        self.metrics.starts += 1
        sb.task = asyncio.create_task(self._launch(sb))
        return sb

    # ------------------------------------------------------------------ idle auto-stop

    async def _scan_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.auto_stop_interval)
            try:
                await self.scan_idle()
            except Exception:
                log.exception("idle scan failed")

    async def scan_idle(self) -> None:
        now = time.time()
        expiring = []
        for sb in list(self.sandboxes.values()):
            clear = sb.record.get("auto_clear_seconds") or 0
            if sb.state != "running" or clear <= 0:
                continue
            if now - sb.record.get("last_activity_time", now) >= clear:
                expiring.append(sb)
            elif int(now) % 30 == 0:
                self._save(sb)  # persist the activity clock now and then
        # Read nodes report the activity they serve to the store: the latest seen anywhere counts.
        seen = self.store.activity([sb.id for sb in expiring]) if expiring else {}
        for sb in expiring:
            last = max(sb.record.get("last_activity_time", now), seen.get(sb.id, 0.0))
            sb.record["last_activity_time"] = last
            clear = sb.record["auto_clear_seconds"]
            if sb.state == "running" and now - last >= clear:
                self.metrics.auto_stops += 1
                await self.stop(sb.id, f"expired: idle for {now - last:.0f} s (auto_clear_seconds={clear:g})")

    # ------------------------------------------------------------------ health

    async def _health_loop(self) -> None:
        since = time.time()
        while True:
            await asyncio.sleep(self.config.health_interval)
            started = time.time()
            try:
                await self.scan_health(since)
            except Exception:
                log.exception("health scan failed")
            since = started

    async def scan_health(self, since: float) -> None:
        """Probe the running sandboxes active since `since` (a frozen rocklet has calls waiting on it) and those
        that failed their last probe; idle ones are left asleep."""
        busy = [
            sb
            for sb in self.sandboxes.values()
            if sb.state == "running"
            and sb.handle is not None
            and (sb.record.get("last_activity_time", 0) >= since or sb.unresponsive_since is not None)
        ]
        slots = asyncio.Semaphore(64)

        async def probe(sb: Sandbox) -> None:
            async with slots:
                await self.data.probe(sb)

        await asyncio.gather(*(probe(sb) for sb in busy))

    async def unresponsive(self, sb: Sandbox) -> None:
        """Past `health_timeout` without an answer: the sandbox failed (its rocklet is frozen or hung); stop it."""
        since = sb.unresponsive_since
        limit = self.config.health_timeout
        if since is None or limit <= 0 or sb.state != "running" or sb.stopping:
            return
        silent = time.time() - since
        if silent < limit:
            return
        self._fail(
            sb,
            f"unresponsive: the rocklet did not answer /is_alive for {silent:.0f} s (health_timeout={limit:g}; "
            "frozen by a signal or a tracer, or hung)",
        )
        handle = sb.handle
        if handle is not None:
            await self.runtime.stop(handle)  # its processes and limits go; calls waiting on it end
        await sb.close_clients()

    # ------------------------------------------------------------------ views

    def endpoint(self, handle: Handle) -> Endpoint:
        return self.runtime.endpoint(handle)

    def known(self, record: dict[str, Any]) -> Sandbox:
        sb = self.sandboxes.get(record["sandbox_id"])
        return sb if sb is not None else Sandbox(record)

    def running(self, sandbox_id: str | None) -> Sandbox:
        return require_running(self.get(sandbox_id))

    def touch(self, sb: Sandbox) -> None:
        sb.record["last_activity_time"] = time.time()

    async def refresh(self, sb: Sandbox) -> Sandbox | None:
        return None  # this node's own records are current: there is no newer route

    def counts(self) -> dict[str, int]:
        return count_states(self.sandboxes.values())


def _pids_budget(config: AdminConfig) -> int | None:
    """The sandboxes' pids budget on this host; None where there is none (or the sandboxes are on other hosts)."""
    if config.pids_budget == -1 or config.scheduler != "local":
        return None
    if config.pids_budget > 0:
        return config.pids_budget
    try:
        pid_max = host_pid_max()
    except (OSError, ValueError):
        log.warning("kernel.pid_max unreadable: no pids budget (set pids_budget)")
        return None
    return max(pid_max - config.pids_reserve, config.pids_max)
