"""The sandbox API over raw HTTP, as an upstream client calls it: lifecycle, envelope shapes, bad input."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from rock_admin.testing import failed, ok, run, start_sandbox


def wait_state(http: httpx.Client, sid: str, states: set[str], timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = ok(http.get("/get_status", params={"sandbox_id": sid, "include_all_states": "true"}))
        assert isinstance(status, dict)
        if status["state"] in states:
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.02)


def test_hello_openapi_metrics(admin) -> None:
    with admin.raw() as raw:
        assert raw.get("/").json() == {"message": "hello, ROCK!"}
        schema = raw.get("/schema/openapi.json").json()
        assert "/apis/envs/sandbox/v1/start_async" in schema["paths"]
        assert "/apis/v1/envs/gem/make" in schema["paths"]
        text = raw.get("/metrics").text
        assert "rock_admin_requests_total" in text and 'rock_admin_sandboxes{state="running"}' in text


def test_upstream_flow_raw_http(http: httpx.Client, tmp_path) -> None:
    started = ok(http.post("/start_async", json={"image": "python:3.11", "memory": "512m", "cpus": 1}))
    assert isinstance(started, dict)
    sid = started["sandbox_id"]
    assert {"sandbox_id", "host_name", "host_ip", "cpus", "memory", "disk"} <= set(started)
    status = wait_state(http, sid, {"running"})
    assert status["is_alive"] is True
    assert status["status"]["docker_run"]["status"] == "success"
    assert ok(http.get("/is_alive", params={"sandbox_id": sid}))["is_alive"] is True  # type: ignore[index]

    assert ok(http.post("/create_session", json={"sandbox_id": sid, "session": "bash-1"})) == {
        "output": "",
        "session_type": "bash",
    }
    obs = ok(
        http.post(
            "/run_in_session",
            json={
                "action_type": "bash",
                "sandbox_id": sid,
                "session": "bash-1",
                "command": "echo Hello Rock",
            },
        )
    )
    assert obs["output"].strip() == "Hello Rock" and obs["exit_code"] == 0  # type: ignore[index]
    # Upstream semantics: a non-zero exit under check="raise" (the default) is a Failed envelope, code 6000.
    body = failed(
        http.post("/run_in_session", json={"sandbox_id": sid, "session": "bash-1", "command": "(exit 3)"})
    )
    assert body["result"]["code"] == 6000 and body["result"]["exit_code"] == 3
    assert "NonZeroExitCodeError" in body["message"]
    # check=silent returns the exit code.
    assert run(http, sid, "false", session="bash-1")["exit_code"] == 1

    res = ok(http.post("/execute", json={"sandbox_id": sid, "command": ["echo", "x y"], "timeout": 30}))
    assert res == {"stdout": "x y\n", "stderr": "", "exit_code": 0}
    ok(http.post("/write_file", json={"sandbox_id": sid, "path": "/tmp/a/b.txt", "content": "héllo"}))
    assert ok(http.post("/read_file", json={"sandbox_id": sid, "path": "/tmp/a/b.txt"})) == {
        "content": "héllo"
    }
    missing = failed(http.post("/read_file", json={"sandbox_id": sid, "path": "/nope"}))
    assert "FileNotFoundError" in missing["message"] and sid in missing["message"]

    up = ok(
        http.post(
            "/upload",
            files={"file": ("data.bin", b"\x00\x01binary")},
            data={"sandbox_id": sid, "target_path": "/tmp/up/data.bin"},
        )
    )
    assert up["success"] is True  # type: ignore[index]
    assert run(http, sid, "wc -c < /tmp/up/data.bin", session="bash-1")["output"].strip() == "8"
    download = http.get("/download", params={"sandbox_id": sid, "path": "/tmp/up/data.bin"})
    assert download.content == b"\x00\x01binary"

    stats = ok(http.get("/get_sandbox_statistics", params={"sandbox_id": sid}))
    assert {"cpu", "mem", "disk", "net"} <= set(stats)  # type: ignore[arg-type]
    ok(http.post("/close_session", json={"sandbox_id": sid, "session": "bash-1"}))

    listed = ok(http.get("/sandboxes", params={"state": "running"}))
    assert sid in [item["sandbox_id"] for item in listed["items"]]  # type: ignore[index]

    assert "stopped" in ok(http.post("/stop", json={"sandbox_id": sid}))  # type: ignore[operator]
    ok(http.post("/stop", json={"sandbox_id": sid}))  # idempotent
    status = wait_state(http, sid, {"stopped"})
    events = [(h["from_state"], h["to_state"]) for h in status["state_history"]]
    assert events == [("pending", "running"), ("running", "stopped")]  # transitions only, as upstream
    # Without include_all_states a stopped sandbox is not found (as upstream), with its state in the message.
    assert "stopped" in failed(http.get("/get_status", params={"sandbox_id": sid}))["message"]
    stopped = failed(http.post("/execute", json={"sandbox_id": sid, "command": "ls"}))
    assert "not running" in stopped["message"] and sid in stopped["message"]
    ok(http.post("/delete", json={"sandbox_id": sid}))
    ok(http.post("/delete", json={"sandbox_id": sid}))  # idempotent
    assert wait_state(http, sid, {"deleted"})["state"] == "deleted"


def test_background_process_and_interrupt(http: httpx.Client) -> None:
    sid = start_sandbox(http)
    try:
        info = ok(http.post("/processes", json={"sandbox_id": sid, "command": "echo out; exit 7"}))
        pid = info["process_id"]  # type: ignore[index]
        done = ok(http.post(f"/processes/{pid}/wait", json={"sandbox_id": sid, "timeout": 30}))
        assert done["exit_code"] == 7  # type: ignore[index]
        out = ok(http.get(f"/processes/{pid}/output", params={"sandbox_id": sid}))
        assert out["stdout"] == "out\n"  # type: ignore[index]
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        import threading

        result: dict = {}

        def long_command() -> None:
            with httpx.Client(base_url=str(http.base_url), timeout=60) as c:
                result["r"] = c.post(
                    "/run_in_session",
                    json={
                        "sandbox_id": sid,
                        "session": "s",
                        "command": "touch /tmp/long-started; sleep 30",
                        "check": "silent",
                    },
                ).json()

        t = threading.Thread(target=long_command)
        t.start()
        deadline = time.monotonic() + 20  # interrupt once the command runs, not after a guessed delay
        probe = {"sandbox_id": sid, "command": ["test", "-e", "/tmp/long-started"]}
        while ok(http.post("/execute", json=probe))["exit_code"] != 0:  # type: ignore[index]
            assert time.monotonic() < deadline, "the long command never started"
            time.sleep(0.05)
        ok(
            http.post(
                "/run_in_session", json={"sandbox_id": sid, "session": "s", "action_type": "bash_interrupt"}
            )
        )
        t.join(20)
        assert not t.is_alive()
        assert run(http, sid, "echo back")["output"].strip() == "back"
    finally:
        http.post("/stop", json={"sandbox_id": sid})


def test_bad_input_is_a_clear_failed_envelope(http: httpx.Client) -> None:
    body = failed(http.post("/start", json={"image": "ubuntu:22.04"}))
    assert (
        "ubuntu:22.04" in body["message"] and "python:3.11" in body["message"] and "host" in body["message"]
    )
    assert "memory" in failed(http.post("/start", json={"memory": "lots"}))["message"]
    too_big = failed(http.post("/start", json={"memory": "1000g"}))["message"]
    assert "maximum" in too_big and "64g" in too_big
    assert "cpus" in failed(http.post("/start", json={"cpus": 999}))["message"]
    invalid = failed(http.post("/start", json={"cpus": "many"}))
    assert invalid["message"] == "invalid parameter" and "cpus" in invalid["error"]
    assert "not found" in failed(http.get("/get_status", params={"sandbox_id": "no-such-box"}))["message"]
    assert ok(http.get("/is_alive", params={"sandbox_id": "no-such-box"}))["is_alive"] is False  # type: ignore[index]
    assert (
        "not found"
        in failed(http.post("/execute", json={"sandbox_id": "no-such-box", "command": "ls"}))["message"]
    )
    ok(http.post("/delete", json={"sandbox_id": "no-such-box"}))  # idempotent, as upstream
    sid = start_sandbox(http, sandbox_id="client-chosen-1")
    try:
        assert sid == "client-chosen-1"
        assert "already exists" in failed(http.post("/start", json={"sandbox_id": sid}))["message"]
    finally:
        http.post("/stop", json={"sandbox_id": sid})
    assert "sandbox_id" in failed(http.post("/start", json={"sandbox_id": "../etc"}))["message"]


def test_restart_keeps_files(http: httpx.Client) -> None:
    sid = start_sandbox(http)
    try:
        ok(http.post("/write_file", json={"sandbox_id": sid, "path": "/tmp/keep.txt", "content": "kept"}))
        ok(http.post("/stop", json={"sandbox_id": sid}))
        ok(http.post(f"/sandboxes/{sid}/restart", json={}))
        wait_state(http, sid, {"running"})
        assert ok(http.post("/read_file", json={"sandbox_id": sid, "path": "/tmp/keep.txt"})) == {
            "content": "kept"
        }
    finally:
        http.post("/stop", json={"sandbox_id": sid})
        http.post("/delete", json={"sandbox_id": sid})


def test_failure_surfaced_when_rocklet_dies(http: httpx.Client) -> None:
    import os
    import signal

    sid = start_sandbox(http)
    status = ok(http.get("/get_status", params={"sandbox_id": sid}))
    init_pid = status["metadata"]["pid"]  # type: ignore[index]
    children = Path(f"/proc/{init_pid}/task/{init_pid}/children").read_text().split()
    assert children, "the sandbox init has the rocklet as its child"
    os.kill(int(children[0]), signal.SIGKILL)
    status = wait_state(http, sid, {"stopped"}, timeout=5)  # failed: stopped, failure_reason says why
    assert "SIGKILL" in status["failure_reason"]
    assert status["is_alive"] is False
    body = failed(http.get("/get_status", params={"sandbox_id": sid}))
    assert "failed" in body["message"] and "SIGKILL" in body["message"]
    assert "SIGKILL" in failed(http.post("/execute", json={"sandbox_id": sid, "command": "ls"}))["message"]
    # A failed sandbox can be restarted.
    ok(http.post("/restart", json={"sandbox_id": sid}))
    wait_state(http, sid, {"running"})
    http.post("/stop", json={"sandbox_id": sid})


def test_startup_timeout_fails_with_reason(http: httpx.Client) -> None:
    body = failed(http.post("/start", json={"memory": "512m", "cpus": 1, "startup_timeout": 0.001}))
    assert "startup timeout" in body["message"]
    sid = body["result"]["sandbox_id"]
    status = ok(http.get("/get_status", params={"sandbox_id": sid, "include_all_states": "true"}))
    assert status["state"] == "stopped" and status["failure_reason"]  # type: ignore[index]
    assert status["status"]["docker_run"]["status"] == "timeout"  # type: ignore[index]


def test_idle_auto_stop(http: httpx.Client) -> None:
    sid = start_sandbox(http, auto_clear_seconds=1)
    status = wait_state(http, sid, {"stopped"}, timeout=15)
    assert status["state_history"][-1]["reason"].startswith("expired")
    # A sandbox with activity stays up; auto_clear_seconds=0 means never.
    sid2 = start_sandbox(http, auto_clear_seconds=0)
    time.sleep(1.5)
    assert ok(http.get("/get_status", params={"sandbox_id": sid2}))["state"] == "running"  # type: ignore[index]
    http.post("/stop", json={"sandbox_id": sid2})


def test_upstream_minutes_field_is_accepted(http: httpx.Client) -> None:
    sid = start_sandbox(http, auto_clear_time_minutes=5)
    status = ok(http.get("/get_status", params={"sandbox_id": sid}))
    assert status["auto_clear_seconds"] == 300  # type: ignore[index]
    http.post("/stop", json={"sandbox_id": sid})
