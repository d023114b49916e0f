"""A multi-node Ray cluster on one machine, for tests and benchmarks: each node is a `ray start --block`
process group of its own (own temp dir, own resources), so one node can be killed (-9) alone and everything
is stopped by process group, never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rocklet.testing import free_port

#: Faster failure detection than Ray's defaults (a lost node is noticed by its agent's dropped connection
#: first; these make the GCS agree within seconds too).
HEAD_ENV = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def ray_executable() -> str:
    return str(Path(sys.executable).with_name("ray"))


@dataclass
class LocalNode:
    name: str
    proc: subprocess.Popen[bytes]
    temp_dir: str
    resources: dict[str, float] = field(default_factory=dict)
    node_id: str = ""

    def kill(self) -> None:
        """SIGKILL every process the node started (raylet, workers, the agent and what its runtime runs, some
        in sessions of their own): a machine that dies at once."""
        tree = _descendants(self.proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10  # SIGKILL lands asynchronously: return once they are all gone
        while any(map(process_alive, tree)) and time.monotonic() < deadline:
            time.sleep(0.02)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


@dataclass
class LocalRayCluster:
    """Head (no CPUs: nothing is placed there) plus worker nodes added with `add_node`."""

    root: str
    port: int = 0
    nodes: dict[str, LocalNode] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> LocalNode:
        temp_dir = os.path.join(self.root, name)
        log = open(os.path.join(self.root, f"{name}.log"), "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [ray_executable(), "start", "--block", "--disable-usage-stats", f"--temp-dir={temp_dir}", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: killed as one
            env={**os.environ, "RAY_AUTH_MODE": "disabled", **env},
        )
        log.close()
        node = LocalNode(name, proc, temp_dir)
        self.nodes[name] = node
        return node

    def start_head(self) -> None:
        self.port = free_port()
        self._start(
            "head",
            [
                "--head",
                f"--port={self.port}",
                "--num-cpus=0",
                "--include-dashboard=false",
                "--node-ip-address=127.0.0.1",
            ],
            HEAD_ENV,
        )
        self._wait_for(lambda: _gcs_up(self.port), "head")

    def add_node(
        self, name: str, cpus: float, memory: int, resources: dict[str, float] | None = None
    ) -> LocalNode:
        node = self._start(
            name,
            [
                f"--address={self.address}",
                f"--num-cpus={cpus:g}",
                f"--memory={memory}",
                f"--resources={json.dumps(resources or {})}",
                "--node-ip-address=127.0.0.1",
            ],
            {},
        )
        node.resources = {"CPU": cpus, "memory": float(memory), **(resources or {})}
        self._wait_for(lambda: self._registered(node), name)
        return node

    def _registered(self, node: LocalNode) -> bool:
        """Whether the head lists the node as alive (and learn its id); asked of the GCS without being a driver."""
        from ray._raylet import GcsClient  # private API, the only driver-free view of the registered nodes

        for info in GcsClient(address=self.address).get_all_node_info().values():
            if info.raylet_socket_name.startswith(node.temp_dir + "/") and info.state == 0:  # 0: ALIVE
                node.node_id = info.node_id.hex()
                return True
        return False

    def _wait_for(self, ready: object, name: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        node = self.nodes[name]
        while not ready():  # type: ignore[operator]
            if node.proc.poll() is not None or time.monotonic() > deadline:
                log = Path(self.root, f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"ray node {name} did not start: {log}")
            time.sleep(0.2)

    def stop(self) -> None:
        for node in reversed(list(self.nodes.values())):
            node.kill()


def process_alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting for its (new) parent to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _descendants(root: int) -> list[int]:
    """`root` and every process below it (by parent pid, read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _gcs_up(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def local_ray_cluster() -> Iterator[LocalRayCluster]:
    """A head node in a short temp dir under /tmp (Ray's socket paths are length-limited), removed at the end."""
    root = tempfile.mkdtemp(prefix="rkray-", dir="/tmp")
    cluster = LocalRayCluster(root)
    try:
        cluster.start_head()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
