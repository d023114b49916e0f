"""The `ray` scheduler: sandboxes placed on a Ray cluster. Per sandbox a placement group reserves its cpus and
memory (Ray does the accounting), spread over the nodes; the node's agent (`agent.NodeAgent`, a detached actor
pinned to that node) starts it with the node's own runtime. The admin then talks to the rocklet directly: its
Unix socket when the node is this host, else the agent's TCP forwarder (bytes, never Ray RPC).

Infeasible requests (no node that big) fail at once with the largest node's size; feasible ones wait for free
resources at most `ray_placement_timeout` seconds and then fail saying so. A node whose agent dies (the node
was lost) fails its sandboxes with the node's id within seconds: the admin keeps one never-ending `events`
call per agent in flight, and its error is the signal.

To the lifecycle the scheduler is a runtime: `SandboxService` starts, stops, watches and dials sandboxes by
their handles, and where a sandbox runs is the scheduler's business. So `RayScheduler` satisfies the
`runtimes.base.Runtime` protocol (checked in tests/test_layers.py) without subclassing it or a node runtime:
request → `SandboxService` → `RayScheduler` (placement group, node agent) → the node's runtime → rocklet, and
the data plane dials the handle's rocklet directly. A separate scheduler interface over local runtimes would
add a layer that only forwards on a single host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import ray
from ray.exceptions import GetTimeoutError, RayError
from ray.util.placement_group import (
    PlacementGroup,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from rock_admin.errors import LaunchError
from rock_admin.runtimes.base import Endpoint, Handle, SandboxSpec
from rock_admin.runtimes.host import UDS_MAX
from rock_admin.schedulers.agent import NodeAgent

if TYPE_CHECKING:
    from rock_admin.config import AdminConfig

log = logging.getLogger("rock_admin.ray")
T = TypeVar("T")

#: How long a node whose agent died is skipped when placing (unless Ray says it is gone for good).
LOST_NODE_SKIP_S = 60.0
#: Ray calls to an agent that should answer at once (stop, remove, status).
AGENT_CALL_TIMEOUT_S = 30.0
#: Longest single blocking wait on a placement group, so waits share the thread pool fairly.
PLACEMENT_POLL_S = 1.0


def _gib(n: float) -> str:
    return f"{n / 1024**3:.2f} GiB"


@dataclass
class _Watch:
    handle: Handle
    on_exit: Callable[[Handle], None]
    loop: asyncio.AbstractEventLoop


class RayScheduler:
    """A `Runtime` (the protocol) whose sandboxes run on a Ray cluster's nodes, each started by that node's
    runtime."""

    name = "ray"

    def __init__(
        self,
        address: str,
        namespace: str,
        node_runtime: str,
        node_state_dir: str,
        runtime_kwargs: dict[str, Any],
        placement_timeout: float,
        dial: str = "auto",
    ) -> None:
        self.address = address
        self.namespace = namespace
        self.node_runtime = node_runtime
        self.node_state_dir = node_state_dir
        self.runtime_kwargs = runtime_kwargs
        self.placement_timeout = placement_timeout
        self.dial = dial
        # Ray's calls block: they run here, not in the default executor the lifecycle's file work uses.
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="rock-ray")
        self._lock = threading.Lock()
        self._agents: dict[str, Any] = {}  # node id → actor handle
        self._watches: dict[str, _Watch] = {}  # sandbox id → who to tell when it exits
        self._exited: dict[str, tuple[int, str, str]] = {}  # sandbox id → (pid, url, reason) not yet watched
        self._lost: dict[str, tuple[str, float]] = {}  # node id → (reason, when)
        self._load: dict[str, float] = {}  # node id → cpus of our sandboxes placed there (for spreading)
        self._cpus: dict[str, float] = {}  # sandbox id → its cpus, counted in `_load`
        self._closing = False  # agents we stop ourselves are not lost nodes

    @classmethod
    def from_config(cls, config: AdminConfig) -> RayScheduler:
        return cls(
            address=config.ray_address,
            namespace=config.ray_namespace,
            node_runtime=config.runtime,
            node_state_dir=config.ray_node_state_dir or os.path.join(config.state_dir, "ray-nodes"),
            # The admin's own state dir (its store) is hidden from sandboxes too, wherever the node is.
            runtime_kwargs={
                **config.runtime_options(),
                "hide_paths": [*config.hide_paths, config.state_dir],
            },
            placement_timeout=config.ray_placement_timeout or config.startup_timeout,
            dial=config.ray_dial,
        )

    # ------------------------------------------------------------------ Ray plumbing

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    @staticmethod
    async def _await(ref: Any, timeout: float | None = None) -> Any:
        """Await a Ray ObjectRef without holding a thread."""
        return await asyncio.wait_for(asyncio.wrap_future(ref.future()), timeout)

    def _connect(self) -> None:
        if ray.is_initialized():
            return
        # Without this Ray writes a token under ~/.ray; a cluster with auth on says so in the admin's env.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        try:
            ray.init(
                address=self.address,
                namespace=self.namespace,
                logging_level=logging.WARNING,
                log_to_driver=False,
                configure_logging=False,
            )
        except Exception as exc:
            raise LaunchError(f"ray_address {self.address!r}: cannot join the Ray cluster: {exc}") from exc

    def _agent(self, node_id: str) -> Any:
        """The node's agent: found by name (it outlives admins) or created, pinned to the node."""
        with self._lock:
            agent = self._agents.get(node_id)
        if agent is not None:
            return agent
        host = next((n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node_id), "")
        agent = (
            ray.remote(NodeAgent)
            .options(
                name=f"rock-agent-{node_id}",
                namespace=self.namespace,
                lifetime="detached",
                get_if_exists=True,
                num_cpus=0,
                max_concurrency=1000,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            )
            .remote(node_id, host, self.node_runtime, self.node_state_dir, self.runtime_kwargs)
        )
        with self._lock:
            if node_id in self._agents:
                return self._agents[node_id]
            self._agents[node_id] = agent
        self._poll(node_id, agent, 0)
        return agent

    def _poll(self, node_id: str, agent: Any, cursor: int) -> None:
        """Keep one `events` call in flight on the agent; its answer is exits, its failure a lost node."""
        ref = agent.events.remote(cursor)
        ref.future().add_done_callback(lambda fut: self._on_events(node_id, agent, fut))

    def _on_events(self, node_id: str, agent: Any, fut: Future[Any]) -> None:
        try:
            cursor, exits = fut.result()
        except Exception as exc:
            self._node_lost(node_id, agent, exc)
            return
        for event in exits:
            self._report(event["sandbox_id"], event["pid"], event["url"], event["reason"])
        self._poll(node_id, agent, cursor)

    def _report(self, sandbox_id: str, pid: int, url: str, reason: str) -> None:
        with self._lock:
            watch = self._watches.get(sandbox_id)
            if watch is None or (watch.handle.pid, watch.handle.url) != (pid, url):
                self._exited[sandbox_id] = (pid, url, reason)
                return
            del self._watches[sandbox_id]
            self._exited[sandbox_id] = (pid, url, reason)
        watch.loop.call_soon_threadsafe(watch.on_exit, watch.handle)

    def _node_lost(self, node_id: str, agent: Any, exc: BaseException) -> None:
        if self._closing:
            return
        reason = f"node {node_id} lost: its agent is unreachable ({type(exc).__name__})"
        log.warning("%s", reason)
        with self._lock:
            if self._agents.get(node_id) is agent:
                del self._agents[node_id]
            self._lost[node_id] = (reason, time.monotonic())
            doomed = [w for w in self._watches.values() if w.handle.node_id == node_id]
        for w in doomed:
            self._report(w.handle.sandbox_id, w.handle.pid, w.handle.url, reason)

    # ------------------------------------------------------------------ placement

    def _choose_node(self, cpus: float, memory: int) -> str:
        """The least loaded node that can ever fit the request; an error naming the largest node if none can."""
        now = time.monotonic()
        nodes = [n for n in ray.nodes() if n["Alive"]]
        if not nodes:
            raise LaunchError(f"ray_address {self.address!r}: the Ray cluster has no live node")
        fits = [
            n
            for n in nodes
            if n["Resources"].get("CPU", 0) >= cpus and n["Resources"].get("memory", 0) >= memory
        ]
        if not fits:
            big = [n for n in nodes if n["Resources"].get("CPU", 0) >= cpus]
            if not big:
                top = max(n["Resources"].get("CPU", 0) for n in nodes)
                raise LaunchError(
                    f"no Ray node has cpus={cpus:g}: the largest has {top:g} CPUs ({len(nodes)} live nodes)"
                )
            top = max(n["Resources"].get("memory", 0) for n in big)
            raise LaunchError(
                f"no Ray node with cpus={cpus:g} has memory={_gib(memory)}: the most such a node has is "
                f"{_gib(top)} ({len(nodes)} live nodes)"
            )
        with self._lock:
            usable = [n for n in fits if now - self._lost.get(n["NodeID"], ("", -1e9))[1] > LOST_NODE_SKIP_S]
            pick = min(
                usable or fits,
                key=lambda n: (self._load.get(n["NodeID"], 0.0) / n["Resources"]["CPU"], n["NodeID"]),
            )
            self._load[pick["NodeID"]] = self._load.get(pick["NodeID"], 0.0) + cpus
        return pick["NodeID"]

    def _unload(self, node_id: str, cpus: float) -> None:
        with self._lock:
            self._load[node_id] = max(0.0, self._load.get(node_id, 0.0) - cpus)

    async def _reserve(self, spec: SandboxSpec, target: str) -> tuple[PlacementGroup, str]:
        """A placement group of one bundle {CPU, memory} for the sandbox; the node it got, once it is ready."""
        bundle = {"CPU": spec.cpus, "memory": float(spec.memory_bytes)}
        pg = await self._call(
            lambda: placement_group(
                [bundle],
                strategy="STRICT_PACK",
                name=_pg_name(spec.sandbox_id),
                lifetime="detached",  # the reservation lasts as long as the sandbox, not this admin
                _soft_target_node_id=target,
            )
        )
        deadline = time.monotonic() + self.placement_timeout
        while not await self._call(pg.wait, min(PLACEMENT_POLL_S, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                free = await self._call(ray.available_resources)
                await self._call(remove_placement_group, pg)
                raise LaunchError(
                    f"no Ray node had cpus={spec.cpus:g} and memory={_gib(spec.memory_bytes)} free within "
                    f"{self.placement_timeout:g} s (ray_placement_timeout); free in the cluster now: "
                    f"{free.get('CPU', 0):g} CPUs, {_gib(free.get('memory', 0))}"
                )
        table = await self._call(placement_group_table, pg)
        return pg, table["bundles_to_node_id"][0]

    # ------------------------------------------------------------------ the Runtime protocol

    async def start(self, spec: SandboxSpec) -> Handle:
        await self._call(self._connect)
        target = await self._call(self._choose_node, spec.cpus, spec.memory_bytes)
        try:
            pg, node_id = await self._reserve(spec, target)
        finally:
            self._unload(target, spec.cpus)
        try:
            agent = await self._call(self._agent, node_id)
            handle: Handle = await self._await(agent.start.remote(spec))
        except BaseException as exc:
            await asyncio.shield(self._call(remove_placement_group, pg))
            if isinstance(exc, RayError):
                raise LaunchError(f"node {node_id}: {_cause(exc)}") from exc
            raise
        with self._lock:
            self._load[node_id] = self._load.get(node_id, 0.0) + spec.cpus
            self._cpus[spec.sandbox_id] = spec.cpus
            self._exited.pop(spec.sandbox_id, None)
        return handle

    def endpoint(self, handle: Handle) -> Endpoint:
        """The node's socket when it is on this host (and short enough), else the agent's TCP forwarder (a
        longer socket path cannot be dialed)."""
        if self.dial == "auto" and handle.uds and len(handle.uds) <= UDS_MAX and os.path.exists(handle.uds):
            return Endpoint(uds=handle.uds)
        return Endpoint(url=handle.url)

    async def stop(self, handle: Handle) -> None:
        with self._lock:
            self._watches.pop(handle.sandbox_id, None)
            agent = self._agents.get(handle.node_id)
        if agent is not None:
            try:
                await self._await(agent.stop.remote(handle), AGENT_CALL_TIMEOUT_S)
            except (RayError, asyncio.TimeoutError) as exc:
                log.warning("stop of %s on node %s: %s", handle.sandbox_id, handle.node_id, _cause(exc))
        await self._call(self._release, handle)

    def _release(self, handle: Handle) -> None:
        """Give the sandbox's reservation back to Ray (idempotent: the group may be gone already)."""
        with self._lock:
            cpus = self._cpus.pop(handle.sandbox_id, None)
            self._exited.pop(handle.sandbox_id, None)
        if cpus is not None:
            self._unload(handle.node_id, cpus)
        with contextlib.suppress(ValueError, RayError):
            remove_placement_group(ray.util.get_placement_group(_pg_name(handle.sandbox_id)))

    def remove(self, handle: Handle) -> None:
        agent = self._existing_agent(handle.node_id)
        if agent is not None:
            try:
                ray.get(agent.remove.remote(handle), timeout=AGENT_CALL_TIMEOUT_S)
            except (RayError, GetTimeoutError) as exc:
                log.warning("remove of %s on node %s: %s", handle.sandbox_id, handle.node_id, _cause(exc))
        self._release(handle)

    def _existing_agent(self, node_id: str) -> Any:
        """The node's agent if it is alive (no new one: a lost node's sandboxes are not there to act on)."""
        self._connect()
        with self._lock:
            agent = self._agents.get(node_id)
            if agent is not None or node_id in self._lost:
                return agent
        try:
            ray.get_actor(f"rock-agent-{node_id}", namespace=self.namespace)
        except ValueError:
            return None
        return self._agent(node_id)

    def is_running(self, handle: Handle) -> bool:
        """Asked when an admin adopts sandboxes after a restart: the node's agent says (blocking, briefly)."""
        try:
            agent = self._existing_agent(handle.node_id)
            running = agent is not None and ray.get(agent.is_running.remote(handle), timeout=10)
        except (RayError, GetTimeoutError, LaunchError):
            return False
        return bool(running)

    def watch(self, handle: Handle, on_exit: Callable[[Handle], None]) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            gone = self._exited.get(handle.sandbox_id)
            lost = self._lost.get(handle.node_id) if handle.node_id not in self._agents else None
            if gone is None and lost is None:
                self._watches[handle.sandbox_id] = _Watch(handle, on_exit, loop)
                return
            if gone is None and lost is not None:
                self._exited[handle.sandbox_id] = (handle.pid, handle.url, lost[0])
        loop.call_soon(on_exit, handle)

    def exit_reason(self, handle: Handle) -> str:
        with self._lock:
            gone = self._exited.get(handle.sandbox_id)
            lost = self._lost.get(handle.node_id)
        if gone is not None and gone[:2] == (handle.pid, handle.url):
            return gone[2]
        if lost is not None:
            return lost[0]
        try:
            agent = self._existing_agent(handle.node_id)
            if agent is None:
                return f"node {handle.node_id}: its agent is gone"
            return str(ray.get(agent.exit_reason.remote(handle), timeout=10))
        except (RayError, GetTimeoutError, LaunchError) as exc:
            return f"node {handle.node_id}: {_cause(exc)}"

    async def remove_orphans(self, known: set[str]) -> list[str]:
        """No sweep of the cluster's nodes for sandboxes without a record: none removed."""
        return []

    def stop_zygote(self) -> None:
        """The lifecycle's `stop_on_exit` hook: stop every node agent and its runtime's helpers."""
        self._closing = True
        with self._lock:
            agents = list(self._agents.values())
            self._agents.clear()
        for agent in agents:
            with contextlib.suppress(RayError, GetTimeoutError):
                ray.get(agent.shutdown.remote(), timeout=AGENT_CALL_TIMEOUT_S)
            with contextlib.suppress(RayError):
                ray.kill(agent)

    async def aclose(self) -> None:
        """Leave the cluster as a driver; agents, reservations and sandboxes stay for the next admin."""
        self._closing = True
        if ray.is_initialized():
            await self._call(ray.shutdown)
        self._pool.shutdown(wait=False)


def _pg_name(sandbox_id: str) -> str:
    return f"rock-sandbox-{sandbox_id}"


def _cause(exc: BaseException) -> str:
    """The message of the error an actor raised (a RayTaskError wraps it), else the error itself."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{cause}"
    return f"{type(exc).__name__}: {exc}"
