"""The runtime interface: start a sandbox from a spec and say how to reach its rocklet; stop; inspect.

`Runtime` is a `typing.Protocol`: what the lifecycle drives. The node runtimes (`process`, `docker`) subclass it
for its defaults; a scheduler (`schedulers.ray.RayScheduler`) satisfies it without inheriting anything.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rock_admin.images import Image


@dataclass
class SandboxSpec:
    sandbox_id: str
    image: Image
    memory_bytes: int
    cpus: float
    pids_max: int
    token: str
    env: dict[str, str] = field(default_factory=dict)
    #: The image pull policy of engine runtimes (`never`, `missing`, `always`; upstream's `pull`).
    pull: str = "missing"
    #: The most the sandbox may write (its `disk`); 0: no limit of its own.
    disk_bytes: int = 0


@dataclass(frozen=True)
class Endpoint:
    """A rocklet's address as the admin dials it: a Unix socket path, or an `http://host:port` URL."""

    uds: str = ""
    url: str = ""

    def __post_init__(self) -> None:
        if bool(self.uds) == bool(self.url):
            raise ValueError("an Endpoint has exactly one of uds= or url=")


@dataclass
class Handle:
    """How to reach and control a running sandbox; stored with its record (JSON) so a restart finds it."""

    sandbox_id: str
    #: The rocklet's Unix socket (same host), or empty when it is reached over TCP at `url`.
    uds: str = ""
    #: `http://host:port` of the rocklet when it is not on a local Unix socket (containers, other nodes).
    url: str = ""
    pid: int = 0
    pid_start: int = 0
    sandbox_dir: str = ""
    isolation: str = "none"
    limits_enforced: bool = False
    limits_message: str = ""
    cgroups: list[str] = field(default_factory=list)
    #: The engine's container id (runtime `docker`).
    container: str = ""
    #: The Ray node the sandbox runs on (scheduler `ray`); empty for the local scheduler.
    node_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Handle:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def dial(handle: Handle) -> Endpoint:
    """A handle may carry both a socket and a URL; the socket wins when it exists on this host."""
    if handle.uds and (not handle.url or os.path.exists(handle.uds)):
        return Endpoint(uds=handle.uds)
    return Endpoint(url=handle.url)


class Runtime(Protocol):
    #: The `runtime:` (or `scheduler:`) name it is chosen by.
    name: str = ""

    @abstractmethod
    async def start(self, spec: SandboxSpec) -> Handle:
        """Start the sandbox; return once its rocklet process exists (not necessarily answering yet)."""

    @abstractmethod
    async def stop(self, handle: Handle) -> None:
        """Kill every process of the sandbox (idempotent). Its files stay until `remove`."""

    @abstractmethod
    def remove(self, handle: Handle) -> None:
        """Delete the sandbox's files and limits (after `stop`)."""

    def endpoint(self, handle: Handle) -> Endpoint:
        """Where the admin connects to the sandbox's rocklet: its socket when that is on this host, else TCP."""
        return dial(handle)

    @abstractmethod
    def is_running(self, handle: Handle) -> bool: ...

    @abstractmethod
    def watch(self, handle: Handle, on_exit: Callable[[Handle], None]) -> None:
        """Call `on_exit(handle)` (in the event loop) as soon as the sandbox's processes are gone."""

    @abstractmethod
    def exit_reason(self, handle: Handle) -> str:
        """Why a sandbox that is gone went (rocklet exit code or signal, out of memory...)."""

    async def remove_orphans(self, known: set[str]) -> list[str]:
        """After an admin restart: remove this admin's sandboxes that no record in `known` (sandbox ids) names;
        returns their ids. Runtimes whose sandboxes cannot outlive their record have none."""
        return []

    async def aclose(self) -> None:
        """Release what the runtime holds (not the sandboxes: they outlive an admin restart)."""
