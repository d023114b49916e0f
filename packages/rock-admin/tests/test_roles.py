"""Read/write roles on one host (SQLite shared through WAL): real write and read admin processes, real sandboxes.

A client may send everything to one read node (lifecycle calls are relayed to the write node), every read node
reaches the right sandbox, a stop through one node is seen through every node, activity served by a read node
keeps the write node's idle auto-stop away, and the SDK skips the hop with separate read and write URLs."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rock.sdk.sandbox.client import Sandbox
from rock.sdk.sandbox.config import SandboxConfig
from rock.sdk.sandbox.request import CreateBashSessionRequest
from rock_admin.config import AdminConfig, AdminConfigError
from rock_admin.testing import Admin, failed, ok, running_admin, start_sandbox

KEY = "cluster-key"
AUTH = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Admin, Admin, Admin]]:
    """A write node and two read nodes on its state dir, all behind one API key."""
    state = tmp_path_factory.mktemp("cluster")
    with (
        running_admin(state, role="write", api_keys=KEY) as write,
        running_admin(state, role="read", write_url=write.url, api_keys=KEY) as r1,
        running_admin(state, role="read", write_url=write.url, api_keys=KEY) as r2,
    ):
        yield write, r1, r2


def cmd(http: httpx.Client, sid: str, command: str) -> str:
    body = {"sandbox_id": sid, "session": "s", "command": command, "check": "silent"}
    return ok(http.post("/run_in_session", json=body))["output"]  # type: ignore[index]


def state_of(http: httpx.Client, sid: str) -> str:
    params = {"sandbox_id": sid, "include_all_states": "true"}
    return ok(http.get("/get_status", params=params))["state"]  # type: ignore[index]


def test_one_read_url_serves_lifecycle_and_reaches_the_right_sandbox(
    cluster: tuple[Admin, Admin, Admin],
) -> None:
    _, r1, r2 = cluster
    with r1.client(headers=AUTH) as h1, r2.client(headers=AUTH) as h2:
        sids = [start_sandbox(h1) for _ in range(4)]  # relayed to the write node
        for i, sid in enumerate(sids):
            http = (h1, h2)[i % 2]
            ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
            ok(http.post("/write_file", json={"sandbox_id": sid, "path": "/tmp/who", "content": sid}))
        for i, sid in enumerate(sids):  # each through the other read node than the one that set it up
            http = (h2, h1)[i % 2]
            # The hostname is the sandbox id (set by the runtime); the file was written through the other node.
            assert cmd(http, sid, "echo $(hostname):$(cat /tmp/who)").strip() == f"{sid}:{sid}"
            assert state_of(http, sid) == "running"
        listed = ok(h2.get("/sandboxes", params={"state": "running"}))
        assert set(sids) <= {item["sandbox_id"] for item in listed["items"]}  # type: ignore[index]
        for sid in sids:
            ok(h2.post("/delete", json={"sandbox_id": sid}))
    without_key = httpx.post(r1.url + "/apis/envs/sandbox/v1/start", json={"image": "python:3.11"})
    assert without_key.status_code == 401


def test_stop_through_one_node_is_seen_through_every_node(cluster: tuple[Admin, Admin, Admin]) -> None:
    write, r1, r2 = cluster
    with r1.client(headers=AUTH) as h1, r2.client(headers=AUTH) as h2, write.client(headers=AUTH) as hw:
        sid = start_sandbox(h2)
        ok(h1.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        assert cmd(h1, sid, "echo before").strip() == "before"  # r1 now caches the route
        ok(h2.post("/stop", json={"sandbox_id": sid}))
        for http in (h1, h2, hw):
            assert state_of(http, sid) == "stopped"
        refused = failed(
            h1.post("/run_in_session", json={"sandbox_id": sid, "session": "s", "command": "true"})
        )
        assert "state: stopped" in refused["message"]
        ok(h1.post("/restart", json={"sandbox_id": sid}))  # relayed; a new rocklet behind the cached route
        deadline = time.monotonic() + 60
        while state_of(h1, sid) != "running":
            assert time.monotonic() < deadline, "the restarted sandbox did not come back"
            time.sleep(0.05)
        ok(h1.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        assert cmd(h1, sid, "echo after").strip() == "after"
        ok(h1.post("/delete", json={"sandbox_id": sid}))
        assert failed(h2.get("/get_status", params={"sandbox_id": sid}))["message"].endswith("not found")


def test_a_deleted_id_reused_is_reached_through_a_cached_route(cluster: tuple[Admin, Admin, Admin]) -> None:
    _, r1, _ = cluster
    with r1.client(headers=AUTH) as h1:
        for round_ in range(2):  # the second sandbox has the same id, a new rocklet and a new token
            sid = start_sandbox(h1, sandbox_id="reused-id")
            ok(h1.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
            assert cmd(h1, sid, f"echo round {round_}").strip() == f"round {round_}"
            ok(h1.post("/delete", json={"sandbox_id": sid}))


def test_read_node_activity_keeps_the_idle_stop_away(cluster: tuple[Admin, Admin, Admin]) -> None:
    write, r1, _ = cluster
    with r1.client(headers=AUTH) as h1, write.client(headers=AUTH) as hw:
        sid = start_sandbox(h1, auto_clear_seconds=3)
        ok(h1.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        busy_until = time.monotonic() + 6  # twice the idle limit, busy only through the read node
        while time.monotonic() < busy_until:
            assert cmd(h1, sid, "echo busy").strip() == "busy"
            time.sleep(0.3)
        assert state_of(hw, sid) == "running"
        deadline = time.monotonic() + 30
        while state_of(hw, sid) != "stopped":
            assert time.monotonic() < deadline, "the idle sandbox was not stopped"
            time.sleep(0.2)
        status = ok(hw.get("/get_status", params={"sandbox_id": sid, "include_all_states": "true"}))
        assert status["state_history"][-1]["reason"].startswith("expired: idle")  # type: ignore[index]


def test_gem_through_a_read_node(cluster: tuple[Admin, Admin, Admin]) -> None:
    _, r1, r2 = cluster
    gem1 = httpx.Client(base_url=r1.url + "/apis/v1/envs/gem", headers=AUTH, timeout=60)
    gem2 = httpx.Client(base_url=r2.url + "/apis/v1/envs/gem", headers=AUTH, timeout=60)
    with gem1, gem2:
        made = gem1.post("/make", json={"env_id": "game:Sokoban-v0-easy"})
        assert made.status_code == 200, made.text
        env = made.json()["sandbox_id"]
        reset = gem2.post("/reset", json={"sandbox_id": env, "seed": 3})
        assert reset.status_code == 200 and isinstance(reset.json()["observation"], str), reset.text
        step = gem1.post("/step", json={"sandbox_id": env, "action": "\\boxed{up}"})
        assert step.status_code == 200 and "reward" in step.json(), step.text
        assert gem2.post("/close", json={"sandbox_id": env}).status_code == 200
        assert gem1.post("/step", json={"sandbox_id": env, "action": "\\boxed{up}"}).status_code == 404


def test_sdk_with_separate_urls_skips_the_hop_and_fails_over(cluster: tuple[Admin, Admin, Admin]) -> None:
    write, r1, _ = cluster
    dead = f"http://127.0.0.1:{_closed_port()}"

    async def go() -> None:
        config = SandboxConfig(
            base_url=dead, write_url=write.url, read_urls=[dead, r1.url], api_key=KEY, memory="512m", cpus=1
        )
        sandbox = Sandbox(config)
        await sandbox.start()
        try:
            await sandbox.create_session(CreateBashSessionRequest(session="s"))
            for i in range(3):
                assert (await sandbox.arun(cmd=f"echo {i}", session="s")).output.strip() == str(i)
            assert sandbox.url == r1.url + "/apis/envs/sandbox/v1"  # moved off the dead one for good
        finally:
            await sandbox.close()
        assert (await _status(write, sandbox.sandbox_id)) == "stopped"

    starts, runs = _served(r1, "start"), _served(r1, "run_in_session")
    asyncio.run(go())
    assert _served(r1, "start") == starts  # lifecycle went straight to the write node
    assert _served(r1, "run_in_session") == runs + 3


def _served(admin: Admin, op: str) -> int:
    """Successful requests of `op` the node's `/metrics` counted."""
    text = httpx.get(admin.url + "/metrics", headers=AUTH).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "rock_admin_requests_total" and sample.labels == {
                "op": f"sandbox.{op}",
                "code": "200",
            }:
                return int(sample.value)
    return 0


async def _status(admin: Admin, sid: str | None) -> str:
    async with httpx.AsyncClient(base_url=admin.url + "/apis/envs/sandbox/v1", headers=AUTH) as http:
        reply = await http.get("/get_status", params={"sandbox_id": sid, "include_all_states": "true"})
    return reply.json()["result"]["state"]


def _closed_port() -> int:
    from rocklet.testing import free_port

    return free_port()  # nothing listens there: connections are refused


def _rocklet_pid(init_pid: int) -> int:
    with open(f"/proc/{init_pid}/task/{init_pid}/children") as f:
        return int(f.read().split()[0])


def test_faults_killed_rocklet_and_kill9_of_the_write_node(tmp_path: Path) -> None:
    """A killed rocklet is reported failed through a read node; a write node killed with -9 and restarted on
    the same state finds every sandbox (and read nodes serve commands while it is down)."""
    with (
        running_admin(tmp_path, role="write") as write,
        running_admin(tmp_path, role="read", write_url=write.url) as r1,
        r1.client() as h1,
    ):
        sids = [start_sandbox(h1) for _ in range(3)]
        for sid in sids:
            ok(h1.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        victim = sids.pop()
        init = ok(h1.get("/get_status", params={"sandbox_id": victim}))["metadata"]["pid"]  # type: ignore[index]
        os.kill(_rocklet_pid(init), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while state_of(h1, victim) != "stopped":  # failed: stopped with a failure_reason
            assert time.monotonic() < deadline, "the killed rocklet's sandbox was not reported failed"
            time.sleep(0.01)
        status = ok(h1.get("/get_status", params={"sandbox_id": victim, "include_all_states": "true"}))
        assert "SIGKILL" in status["failure_reason"]  # type: ignore[index]

        write.kill9()
        for sid in sids:  # the data plane does not need the write node
            assert cmd(h1, sid, f"echo {sid}").strip() == sid
        down = failed(h1.post("/stop", json={"sandbox_id": sids[0]}))
        assert "did not answer" in down["message"]
        write.start()
        for sid in sids:
            assert state_of(h1, sid) == "running"
            assert cmd(h1, sid, f"echo again {sid}").strip() == f"again {sid}"
        ok(h1.post("/stop", json={"sandbox_id": sids[0]}))
        assert state_of(h1, sids[0]) == "stopped"


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"role": "reader"}, "role"),
        ({"role": "read"}, "write_url"),
        ({"role": "read", "write_url": "127.0.0.1:8080"}, "write_url"),
        ({"store": "mongo"}, "store"),
        ({"store": "redis", "redis_url": "localhost:6379"}, "redis_url"),
        ({"redis_prefix": "a b"}, "redis_prefix"),
    ],
)
def test_bad_cluster_settings_name_the_field(settings: dict[str, str], field: str, tmp_path: Path) -> None:
    with pytest.raises(AdminConfigError, match=f"^{field}:"):
        AdminConfig.load(env={}, state_dir=str(tmp_path), **settings)
