"""The `ray` scheduler on a real multi-node Ray cluster simulated on this machine: a head (no CPUs) and two
workers with distinct resources, an admin joined as a driver that dials rocklets over the node agents' TCP
forwarders, and a worker node killed -9 mid-test. Every process is stopped by its PID / process group."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from rock_admin.runtimes.base import Endpoint, Handle
from rock_admin.testing import Admin, failed, ok, run, running_admin, start_sandbox

try:
    import ray  # noqa: F401
except ImportError:  # pragma: no cover - CI installs the test extra, which has ray
    if os.environ.get("CI"):
        raise
    pytest.skip("ray is not installed (pip install 'rock-admin[test]')", allow_module_level=True)

from rock_admin.schedulers.ray import RayScheduler
from rock_admin.testing_ray import LocalRayCluster, local_ray_cluster, process_alive

pytestmark = pytest.mark.ray
GIB = 1024**3


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRayCluster]:
    with local_ray_cluster() as c:
        c.add_node("a", cpus=2, memory=2 * GIB, resources={"zone_a": 1})
        c.add_node("b", cpus=2, memory=3 * GIB, resources={"zone_b": 1})
        yield c


@pytest.fixture(scope="module")
def admin(cluster: LocalRayCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    state_dir = tmp_path_factory.mktemp("ray-admin")
    try:
        with running_admin(
            state_dir,
            scheduler="ray",
            ray_address=cluster.address,
            ray_namespace=f"rock-test-{os.getpid()}",
            ray_dial="url",  # every command crosses an agent's TCP forwarder, as from another host
            ray_placement_timeout="3",
        ) as a:
            yield a
    finally:
        for pid_file in (state_dir / "ray-nodes").glob("*/zygote.pid"):
            _kill(pid_file.read_text())


@pytest.fixture
def http(admin: Admin) -> Iterator[httpx.Client]:
    with admin.client() as c:
        yield c


def _kill(pid: object) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pid), signal.SIGKILL)  # type: ignore[call-overload]


def handles(admin: Admin) -> dict[str, dict]:
    """The sandbox handles the admin stored (node id, URL, pid): read from its SQLite store."""
    with contextlib.closing(sqlite3.connect(admin.state_dir / "rock-admin.db")) as conn:
        records = [json.loads(r) for (r,) in conn.execute("SELECT record FROM sandboxes")]
    return {r["sandbox_id"]: r.get("handle") or {} for r in records}


def status_of(http: httpx.Client, sid: str) -> dict:
    """The sandbox's status (a failed one comes in a Failed envelope, with the status as its result)."""
    return http.get("/get_status", params={"sandbox_id": sid}).json()["result"]


def start_many(http: httpx.Client, n: int, **fields: object) -> list[str]:
    return [start_sandbox(http, **fields) for _ in range(n)]


def stop_all(http: httpx.Client, sids: list[str]) -> None:
    for sid in sids:
        ok(http.post("/stop", json={"sandbox_id": sid}))


def node_of(http: httpx.Client, sid: str, session: str = "s") -> str:
    """The node a sandbox runs on, as the sandbox itself sees it (the agent sets ROCK_NODE_ID)."""
    ok(http.post("/create_session", json={"sandbox_id": sid, "session": session, "env_enable": True}))
    return run(http, sid, "echo $ROCK_NODE_ID", session)["output"].strip()


def test_sandboxes_spread_over_nodes_and_commands_cross_tcp(
    http: httpx.Client, admin: Admin, cluster: LocalRayCluster
) -> None:
    sids = start_many(http, 4, cpus=0.5, memory="256m")
    stored = handles(admin)
    nodes = {sid: stored[sid]["node_id"] for sid in sids}
    assert set(nodes.values()) == {cluster.nodes["a"].node_id, cluster.nodes["b"].node_id}
    for sid in sids:
        assert stored[sid]["url"].startswith("http://"), stored[sid]
        assert node_of(http, sid) == nodes[sid]
        out = run(http, sid, "python3 -c 'print(6 * 7)'")
        assert out["output"].strip() == "42" and out["exit_code"] == 0
    ok(http.post("/write_file", json={"sandbox_id": sids[0], "path": "/tmp/x", "content": "over tcp"}))
    got = ok(http.post("/read_file", json={"sandbox_id": sids[0], "path": "/tmp/x"}))
    assert got["content"] == "over tcp"  # type: ignore[index]
    stop_all(http, sids)


def test_request_no_node_can_fit_fails_at_once(http: httpx.Client) -> None:
    body = failed(http.post("/start", json={"image": "python:3.11", "cpus": 8, "memory": "256m"}))
    assert "no Ray node has cpus=8: the largest has 2 CPUs" in body["message"], body
    body = failed(http.post("/start", json={"image": "python:3.11", "cpus": 1, "memory": "8g"}))
    assert (
        "no Ray node with cpus=1 has memory=8.00 GiB: the most such a node has is 3.00 GiB" in body["message"]
    ), body


def test_busy_cluster_fails_after_placement_timeout_then_frees(http: httpx.Client, admin: Admin) -> None:
    # 4 CPUs in the cluster: four 1-CPU sandboxes take them all (Ray accounts them, not us).
    with ThreadPoolExecutor(4) as pool:
        sids = list(pool.map(lambda _: start_sandbox(http, cpus=1, memory="256m"), range(4)))
    stored = handles(admin)
    assert len({stored[s]["node_id"] for s in sids}) == 2
    body = failed(http.post("/start", json={"image": "python:3.11", "cpus": 1, "memory": "256m"}))
    assert "no Ray node had cpus=1 and memory=0.25 GiB free within 3 s" in body["message"], body
    assert "free in the cluster now: 0 CPUs" in body["message"], body
    # Stopping one gives its reservation back: the next start fits.
    ok(http.post("/stop", json={"sandbox_id": sids[0]}))
    sids[0] = start_sandbox(http, cpus=1, memory="256m")
    stop_all(http, sids)


def test_endpoint_prefers_a_local_socket_unless_told_url(tmp_path: Path) -> None:
    sock = tmp_path / "rocklet.sock"
    sock.touch()
    handle = Handle(sandbox_id="x", uds=str(sock), url="http://10.0.0.9:4000", node_id="n")
    auto, url = (
        RayScheduler("auto", "ns", "process", str(tmp_path), {}, 1.0, dial) for dial in ("auto", "url")
    )
    assert auto.endpoint(handle) == Endpoint(uds=str(sock))
    assert url.endpoint(handle) == Endpoint(url=handle.url)
    elsewhere = Handle(sandbox_id="x", uds="/no/such/host/path.sock", url=handle.url, node_id="n")
    assert auto.endpoint(elsewhere) == Endpoint(url=handle.url)


def test_killed_node_fails_its_sandboxes_others_keep_working(
    http: httpx.Client, admin: Admin, cluster: LocalRayCluster
) -> None:
    """Runs last: node b is gone afterwards."""
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    # The earlier tests' placement groups are freed asynchronously by Ray: a soft target can fall back to the
    # other node for a moment, so start until each node holds one (what this test is about is the kill).
    nodes: dict[str, str] = {}
    extra: list[str] = []
    for _ in range(6):
        sid = start_sandbox(http, cpus=0.5, memory="256m")
        node = node_of(http, sid)
        if node in nodes:
            extra.append(sid)
        else:
            nodes[node] = sid
        if set(nodes) == {a.node_id, b.node_id}:
            break
    assert set(nodes) == {a.node_id, b.node_id}, nodes
    stop_all(http, extra)
    on_a, on_b = nodes[a.node_id], nodes[b.node_id]
    b.kill()  # the machine dies: its Ray processes, the agent, and what the agent's runtime ran (zygote, sandboxes)
    assert not process_alive(handles(admin)[on_b]["pid"])
    deadline = time.monotonic() + 60
    while (status := status_of(http, on_b))["state"] != "stopped":  # failed: stopped with a failure_reason
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert f"node {b.node_id} lost" in status["failure_reason"], status
    assert (
        f"node {b.node_id} lost"
        in failed(http.post("/execute", json={"sandbox_id": on_b, "command": "true"}))["message"]
    )
    # The other node's sandbox is unaffected, and new sandboxes go where there is a node.
    assert run(http, on_a, "echo alive")["output"].strip() == "alive"
    fresh = start_sandbox(http, cpus=0.5, memory="256m")
    assert node_of(http, fresh) == a.node_id
    stop_all(http, [on_a, fresh])


def test_port_forward_crosses_the_agent_tcp_forwarder(http: httpx.Client, admin: Admin) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    sid = start_sandbox(http, cpus=0.5, memory="256m")
    assert handles(admin)[sid]["url"].startswith("http://")  # dialed over TCP, not the socket
    ok(http.post("/write_file", json={"sandbox_id": sid, "path": "/tmp/www/hi.txt", "content": "hello"}))
    ok(
        http.post(
            "/processes",
            json={
                "sandbox_id": sid,
                "command": "python3 -m http.server 7002 --bind 127.0.0.1 --directory /tmp/www",
            },
        )
    )
    probe = "for i in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/7002) 2>/dev/null && exit 0; sleep 0.1; done; exit 1"
    assert (
        ok(http.post("/execute", json={"sandbox_id": sid, "command": ["bash", "-c", probe], "timeout": 60}))[
            "exit_code"
        ]
        == 0
    )  # type: ignore[index]
    url = (
        admin.url.replace("http://", "ws://") + f"/apis/envs/sandbox/v1/sandboxes/{sid}/portforward?port=7002"
    )
    reply = b""
    with connect(url, open_timeout=30) as ws:
        ws.send(b"GET /hi.txt HTTP/1.0\r\n\r\n")
        with pytest.raises(ConnectionClosed):
            while True:
                reply += ws.recv(timeout=30)  # type: ignore[operator]
    assert reply.startswith(b"HTTP/1.0 200") and reply.endswith(b"hello") and ws.close_code == 1000
    stop_all(http, [sid])
