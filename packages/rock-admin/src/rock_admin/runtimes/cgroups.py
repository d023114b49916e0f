"""Per-sandbox memory/cpu/pids limits through cgroups v1 (hierarchies per controller) or v2 (unified).

When neither is writable the sandbox still starts; `limits_enforced` is False and the message says why.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
_V1_CONTROLLERS = ("memory", "cpu", "pids")


@dataclass
class Limits:
    dirs: list[str]
    procs: list[str]
    enforced: bool
    message: str


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


class Cgroups:
    def __init__(self, parent: str = "rock-admin", root: Path = ROOT) -> None:
        self.root = root
        self.parent = parent
        self.version, self.why = self._detect()

    def _detect(self) -> tuple[str, str]:
        if all((self.root / c / "cgroup.procs").exists() for c in _V1_CONTROLLERS):
            if all(os.access(self.root / c, os.W_OK) for c in _V1_CONTROLLERS):
                return "v1", ""
            return "", "cgroup v1 hierarchies are not writable (run the admin as root to enforce limits)"
        controllers = self.root / "cgroup.controllers"
        if controllers.exists():
            have = set(controllers.read_text().split())
            missing = {"memory", "cpu", "pids"} - have
            if missing:
                return "", f"cgroup v2 lacks the controllers {sorted(missing)}"
            if os.access(self.root, os.W_OK):
                return "v2", ""
            return "", "cgroup v2 is not writable (run the admin as root or under a delegated cgroup)"
        return "", "no cgroup v1 or v2 hierarchy with memory, cpu and pids found"

    def create(self, sandbox_id: str, memory_bytes: int, cpus: float, pids_max: int) -> Limits:
        if not self.version:
            return Limits([], [], False, f"limits not enforced: {self.why}")
        try:
            return (
                self._create_v1(sandbox_id, memory_bytes, cpus, pids_max)
                if self.version == "v1"
                else (self._create_v2(sandbox_id, memory_bytes, cpus, pids_max))
            )
        except OSError as exc:
            return Limits([], [], False, f"limits not enforced: cgroup {self.version} setup failed: {exc}")

    def _create_v1(self, sandbox_id: str, memory_bytes: int, cpus: float, pids_max: int) -> Limits:
        dirs = []
        for controller in _V1_CONTROLLERS:
            d = self.root / controller / self.parent / sandbox_id
            d.mkdir(parents=True, exist_ok=True)
            dirs.append(str(d))
        mem, cpu, pids = (Path(d) for d in dirs)
        _write(mem / "memory.limit_in_bytes", str(memory_bytes))
        if (mem / "memory.memsw.limit_in_bytes").exists():
            with contextlib.suppress(OSError):
                _write(mem / "memory.memsw.limit_in_bytes", str(memory_bytes))
        with contextlib.suppress(OSError):
            _write(mem / "memory.swappiness", "0")
        _write(cpu / "cpu.cfs_period_us", "100000")
        _write(cpu / "cpu.cfs_quota_us", str(max(1000, int(cpus * 100000))))
        _write(pids / "pids.max", str(pids_max))
        return Limits(dirs, [f"{d}/cgroup.procs" for d in dirs], True, "cgroup v1: memory, cpu, pids")

    def _create_v2(self, sandbox_id: str, memory_bytes: int, cpus: float, pids_max: int) -> Limits:
        parent = self.root / self.parent
        parent.mkdir(exist_ok=True)
        for d in (self.root, parent):
            with contextlib.suppress(OSError):
                _write(d / "cgroup.subtree_control", "+memory +cpu +pids")
        d = parent / sandbox_id
        d.mkdir(exist_ok=True)
        _write(d / "memory.max", str(memory_bytes))
        with contextlib.suppress(OSError):
            _write(d / "memory.swap.max", "0")
        _write(d / "cpu.max", f"{max(1000, int(cpus * 100000))} 100000")
        _write(d / "pids.max", str(pids_max))
        return Limits([str(d)], [f"{d}/cgroup.procs"], True, "cgroup v2: memory, cpu, pids")

    @staticmethod
    def oom_killed(dirs: list[str]) -> bool:
        for d in dirs:
            for name in ("memory.oom_control", "memory.events"):
                with contextlib.suppress(OSError, ValueError):
                    for line in Path(d, name).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and int(value) > 0:
                            return True
        return False

    @staticmethod
    def kill_all(dirs: list[str]) -> None:
        """SIGKILL whatever is left in the groups (processes that escaped the pid namespace cannot exist, but
        a sandbox without namespaces may leave children behind)."""
        for d in dirs:
            with contextlib.suppress(OSError, ValueError):
                for pid in Path(d, "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), 9)

    @staticmethod
    def remove(dirs: list[str]) -> None:
        for d in dirs:
            with contextlib.suppress(OSError):
                os.rmdir(d)
