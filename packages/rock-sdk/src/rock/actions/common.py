"""Liveness, shutdown and statistics."""

from __future__ import annotations

from rock.actions.base import WireModel


class IsAliveResponse(WireModel):
    """`GET /is_alive`. Truthy when alive, as upstream."""

    is_alive: bool
    message: str = ""

    def __bool__(self) -> bool:
        return self.is_alive


class CloseResponse(WireModel):
    """`POST /close`: every session, process and env of the rocklet is closed."""


class StatisticsResponse(WireModel):
    """`GET /get_statistics`: resource use of the sandbox (cgroup v1 or v2 when present, else the host).

    `cpu`, `mem` and `disk` are percentages of the limit (cpu: of the cpus granted), `net` is bytes received
    plus sent on non-loopback interfaces since boot. The other fields are the raw figures behind them.
    """

    cpu: float = 0.0
    mem: float = 0.0
    disk: float = 0.0
    net: int = 0
    source: str = "host"
    cpu_limit: float = 0.0
    cpu_usage_seconds: float = 0.0
    memory_used_bytes: int = 0
    memory_limit_bytes: int = 0
    disk_used_bytes: int = 0
    disk_total_bytes: int = 0
    net_rx_bytes: int = 0
    net_tx_bytes: int = 0
