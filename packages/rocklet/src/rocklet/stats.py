"""`/get_statistics`: cpu, memory, disk and network use, from cgroups (v1 or v2) when present, else the host."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

from rock.actions import StatisticsResponse

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_NO_LIMIT = 1 << 60


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _own_cgroups() -> dict[str, str]:
    """controller → path from /proc/self/cgroup; the v2 entry is under key ""."""
    result: dict[str, str] = {}
    text = _read(Path("/proc/self/cgroup")) or ""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                result[controller] = parts[2]
    return result


def _find(controller_dir: str, rel: str, filename: str) -> Path | None:
    """The controller file for our cgroup: nested path first (host view), then the mount root (namespaced)."""
    base = _CGROUP_ROOT / controller_dir if controller_dir else _CGROUP_ROOT
    for candidate in (base / rel.lstrip("/"), base):
        if (candidate / filename).exists():
            return candidate / filename
    return None


def _host_cpus() -> float:
    try:
        return float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return float(os.cpu_count() or 1)


def _host_memory() -> tuple[int, int]:
    info: dict[str, int] = {}
    for line in (_read(Path("/proc/meminfo")) or "").splitlines():
        key, _, value = line.partition(":")
        info[key] = int(value.split()[0]) * 1024 if value.split() else 0
    total = info.get("MemTotal", 0)
    return total - info.get("MemAvailable", total), total


def _host_cpu_seconds() -> float:
    first = (_read(Path("/proc/stat")) or "cpu 0").splitlines()[0].split()[1:]
    ticks = [int(x) for x in first]
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
    return busy / os.sysconf("SC_CLK_TCK")


class Sampler:
    """Reads the raw counters; cpu % is the usage between two samples (the first call waits 0.1 s)."""

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None
        self._detect()

    def _detect(self) -> None:
        groups = _own_cgroups()
        self.v2 = (_CGROUP_ROOT / "cgroup.controllers").exists()
        if self.v2:
            rel = groups.get("", "/")
            self._mem_cur = _find("", rel, "memory.current")
            self._mem_max = _find("", rel, "memory.max")
            self._cpu_stat = _find("", rel, "cpu.stat")
            self._cpu_max = _find("", rel, "cpu.max")
            self.source = "cgroup_v2" if self._mem_cur or self._cpu_stat else "host"
        else:
            self._mem_cur = _find("memory", groups.get("memory", "/"), "memory.usage_in_bytes")
            self._mem_max = _find("memory", groups.get("memory", "/"), "memory.limit_in_bytes")
            cpu_rel = groups.get("cpuacct", groups.get("cpu", "/"))
            self._cpu_stat = _find("cpuacct", cpu_rel, "cpuacct.usage") or _find(
                "cpu,cpuacct", cpu_rel, "cpuacct.usage"
            )
            self._cpu_quota = _find("cpu", groups.get("cpu", "/"), "cpu.cfs_quota_us")
            self._cpu_period = _find("cpu", groups.get("cpu", "/"), "cpu.cfs_period_us")
            self.source = "cgroup_v1" if self._mem_cur or self._cpu_stat else "host"

    def cpu_seconds(self) -> float:
        if self._cpu_stat is not None:
            text = _read(self._cpu_stat) or ""
            if self.v2:
                for line in text.splitlines():
                    if line.startswith("usage_usec"):
                        return int(line.split()[1]) / 1e6
            elif text:
                return int(text) / 1e9
        return _host_cpu_seconds()

    def cpu_limit(self) -> float:
        host = _host_cpus()
        if self.v2 and self._cpu_max is not None:
            quota, _, period = (_read(self._cpu_max) or "max").partition(" ")
            if quota != "max" and period:
                return min(int(quota) / int(period), host)
        elif not self.v2 and getattr(self, "_cpu_quota", None) is not None:
            quota = int(_read(self._cpu_quota) or -1)
            period = int(_read(self._cpu_period) or 0) if self._cpu_period else 0
            if quota > 0 and period > 0:
                return min(quota / period, host)
        return host

    def memory(self) -> tuple[int, int]:
        used_host, total_host = _host_memory()
        if self._mem_cur is None:
            return used_host, total_host
        used = int(_read(self._mem_cur) or 0)
        raw = _read(self._mem_max) if self._mem_max else None
        limit = int(raw) if raw and raw != "max" else _NO_LIMIT
        return used, min(limit, total_host) if total_host else limit

    async def sample(self, disk_path: str = "/") -> StatisticsResponse:
        now, cpu = time.monotonic(), self.cpu_seconds()
        if self._last is None or now - self._last[0] < 0.05:
            await asyncio.sleep(0.1)
            self._last = (now, cpu)
            now, cpu = time.monotonic(), self.cpu_seconds()
        last_t, last_cpu = self._last
        self._last = (now, cpu)
        limit = self.cpu_limit()
        cpu_pct = max(0.0, (cpu - last_cpu) / max(now - last_t, 1e-6) / limit * 100)
        used, total = self.memory()
        disk = shutil.disk_usage(disk_path)
        rx = tx = 0
        for line in (_read(Path("/proc/net/dev")) or "").splitlines()[2:]:
            name, _, rest = line.partition(":")
            fields = rest.split()
            if name.strip() != "lo" and len(fields) >= 9:
                rx += int(fields[0])
                tx += int(fields[8])
        return StatisticsResponse(
            cpu=round(cpu_pct, 2),
            mem=round(used / total * 100, 2) if total else 0.0,
            disk=round(disk.used / disk.total * 100, 2) if disk.total else 0.0,
            net=rx + tx,
            source=self.source,
            cpu_limit=limit,
            cpu_usage_seconds=cpu,
            memory_used_bytes=used,
            memory_limit_bytes=total,
            disk_used_bytes=disk.used,
            disk_total_bytes=disk.total,
            net_rx_bytes=rx,
            net_tx_bytes=tx,
        )
