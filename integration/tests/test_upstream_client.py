"""Upstream compatibility: a client written for upstream ROCK (raw HTTP shaped as `reference/rock.md` §1–2,
no SDK of ours) creates a sandbox and plays a Sokoban episode against our admin, the way ROLL's
SokobanSandboxEnv drives upstream (start_async, get_status polling, two bash sessions, a game server started
in one, one client command per move); and plays one through the GEM API."""

from __future__ import annotations

import json
import shlex
import sys
import time

import httpx

import gem_envs
from gem_envs.envs.sokoban.solver import solve

LEVEL = {"dim_room": [6, 6], "num_boxes": 1, "max_steps": 10}
SERVER = f"{shlex.quote(sys.executable)} -m roll.envs.sokoban_server"


class UpstreamClient:
    """Exactly the calls upstream's SDK makes, with upstream's bodies and headers, checking the envelope."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(
            base_url=f"{base_url}/apis/envs/sandbox/v1", timeout=60, headers={"X-Cluster": "vpc-nt-a"}
        )
        self.sandbox_id = ""

    def call(self, method: str, op: str, **kw) -> dict:
        response = self.http.request(method, f"/{op}", **kw)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"status", "message", "error", "result"}, body
        return body

    def ok(self, method: str, op: str, **kw):
        body = self.call(method, op, **kw)
        assert body["status"] == "Success", body
        return body["result"]

    def start(self) -> None:
        result = self.ok(
            "POST",
            "start_async",
            json={
                "image": "python:3.11",
                "image_os": "linux",
                "auto_clear_time": 120,
                "auto_clear_time_minutes": 120,
                "startup_timeout": 180,
                "memory": "1g",
                "cpus": 1,
                "num_gpus": None,
                "accelerator_type": None,
                "registry_username": None,
                "registry_password": None,
                "use_kata_runtime": False,
                "limit_cpus": None,
                "sandbox_id": None,
                "auto_archive_seconds": None,
                "auto_delete_seconds": None,
                "disk": "50G",
            },
        )
        self.sandbox_id = result["sandbox_id"]
        deadline = time.monotonic() + 60
        while not self.ok("GET", "get_status", params={"sandbox_id": self.sandbox_id})["is_alive"]:
            assert time.monotonic() < deadline, "the sandbox did not come alive"
            time.sleep(0.1)

    def session(self, name: str) -> None:
        self.ok(
            "POST",
            "create_session",
            json={"sandbox_id": self.sandbox_id, "session": name, "session_type": "bash"},
        )

    def run(self, command: str, session: str) -> dict:
        """`arun` in normal mode: check="raise", so a non-zero exit is a Failed envelope."""
        body = {"action_type": "bash", "session": session, "command": command, "sandbox_id": self.sandbox_id}
        return self.call("POST", "run_in_session", json={**body, "check": "raise", "timeout": None})


def test_upstream_style_client_plays_sokoban_in_a_sandbox(admin):
    client = UpstreamClient(admin.url)
    client.start()
    try:
        client.session("default")
        client.session("server_session")
        port_file = "/tmp/sokoban/port"
        kwargs = shlex.quote(json.dumps(LEVEL))
        started = client.run(
            f"mkdir -p /tmp/sokoban && cd /tmp/sokoban && {SERVER} --env-kwargs {kwargs} --port-file {port_file} > server.log 2>&1 &",
            "server_session",
        )
        assert started["status"] == "Success", started
        deadline = time.monotonic() + 60
        while client.run(f"{SERVER} --port-file {port_file} --call ping", "default")["status"] != "Success":
            assert time.monotonic() < deadline, "the game server did not come up"
            time.sleep(0.1)

        def play(args: str) -> dict:
            body = client.run(f"{SERVER} --port-file {port_file} --call {args}", "default")
            assert body["status"] == "Success", body
            return json.loads(body["result"]["output"].strip().splitlines()[-1])

        local = gem_envs.make("sokoban", **LEVEL)
        reset = play("reset --seed 11")
        assert (reset["observation"], reset["info"]) == local.reset(seed=11)
        moves = local.solution()
        assert moves, "levels are solvable within max_steps"
        for move in moves:
            reply = play(f"step --action {shlex.quote(move)}")
            expected = local.step(move)
            assert (
                reply["observation"],
                reply["reward"],
                reply["terminated"],
                reply["truncated"],
            ) == expected[:4]
        assert reply["terminated"] and reply["info"]["metrics"]["success"]
        assert reply["reward"] > 10 - 1  # the solving move earns +10 (and +1 for the box, -0.1 per step)
    finally:
        client.ok("POST", "stop", json={"sandbox_id": client.sandbox_id})
    status = client.ok(
        "GET", "get_status", params={"sandbox_id": client.sandbox_id, "include_all_states": "true"}
    )
    assert status["state"] == "stopped"


def test_upstream_style_gem_client_plays_sokoban(admin):
    """`rock.make` as upstream implements it: raw JSON to /apis/v1/envs/gem/{make,reset,step,close}."""
    gem = httpx.Client(base_url=f"{admin.url}/apis/v1/envs/gem", timeout=60)
    sandbox_id = gem.post("/make", json={"env_id": "game:Sokoban-v0-easy"}).json()["sandbox_id"]
    local = gem_envs.make("game:Sokoban-v0-easy")
    try:
        reset = gem.post("/reset", json={"sandbox_id": sandbox_id, "seed": 5}).json()
        assert [reset["observation"], reset["info"]] == list(local.reset(seed=5))
        for move in solve(local.level):
            step = gem.post("/step", json={"sandbox_id": sandbox_id, "action": f"\\boxed{{{move}}}"}).json()
            expected = local.step(f"\\boxed{{{move}}}")
            assert (step["observation"], step["reward"], step["terminated"], step["truncated"]) == expected[
                :4
            ]
        assert step["terminated"] and step["reward"] == expected[1]
    finally:
        assert gem.post("/close", json={"sandbox_id": sandbox_id}).status_code == 200
