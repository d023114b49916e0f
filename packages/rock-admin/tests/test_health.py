"""Health by liveness (issue 11 §1): a sandbox whose rocklet is frozen (SIGSTOP, as a sandbox can do to its own
rocklet) stayed `running` while `is_alive` was false, and calls to it never ended. Now status and `is_alive`
answer within a bound and say it is not alive, past `health_timeout` it is failed (and stopped) with the
reason, every call has a deadline, and a busy but healthy sandbox is left alone."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rock_admin.testing import Admin, failed, ok, run, running_admin, start_sandbox

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the rocklet runs under the sandbox's init as root")


def _rocklet_pid(admin: Admin, sid: str) -> int:
    """The rocklet: the sandbox init's child (the init itself when there is no init)."""
    record = next(r for r in admin._records() if r["sandbox_id"] == sid)
    init = record["handle"]["pid"]
    children = Path(f"/proc/{init}/task/{init}/children").read_text().split()
    return int(children[0]) if children else init


@contextlib.contextmanager
def _frozen(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def _status(http: httpx.Client, sid: str) -> dict:
    reply = http.get("/get_status", params={"sandbox_id": sid, "include_all_states": "true"})
    return reply.json()["result"]


@needs_root
def test_a_sandbox_that_freezes_its_rocklet_is_not_alive_then_failed(tmp_path: Path) -> None:
    with (
        running_admin(tmp_path / "a", health_timeout="2", health_interval="0.5") as admin,
        admin.client() as http,
    ):
        sid = start_sandbox(http, sandbox_id="frozen")
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        assert _status(http, sid)["is_alive"] is True
        # The session's shell stops its parent, the rocklet: this call's reply can never come.
        waiting: list[httpx.Response] = []
        body = {"sandbox_id": sid, "session": "s", "command": "kill -STOP $PPID", "check": "silent"}
        caller = threading.Thread(target=lambda: waiting.append(http.post("/run_in_session", json=body)))
        caller.start()
        deadline = time.monotonic() + 20
        while (status := _status(http, sid))["is_alive"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status["is_alive"] is False, status
        started = time.monotonic()
        alive = ok(http.get("/is_alive", params={"sandbox_id": sid}))
        assert time.monotonic() - started < 10  # bounded, not hanging on the frozen rocklet
        assert alive["is_alive"] is False and "did not answer" in alive["message"], alive  # type: ignore[index]
        while _status(http, sid)["state"] == "running" and time.monotonic() < deadline + 20:
            time.sleep(0.3)
        status = _status(http, sid)
        assert status["state"] in ("failed", "stopped"), status  # upstream's wire may say stopped
        assert "unresponsive" in status["failure_reason"] and "health_timeout" in status["failure_reason"]
        caller.join(30)
        assert not caller.is_alive()  # the waiting call ended with the sandbox
        assert failed(waiting[0])["status"] == "Failed"


@needs_root
def test_a_call_to_a_frozen_rocklet_has_a_deadline(tmp_path: Path) -> None:
    with (
        running_admin(tmp_path / "a", health_timeout="0", rocklet_call_timeout="3") as admin,
        admin.client() as http,
    ):
        sid = start_sandbox(http, sandbox_id="deadline")
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        with _frozen(_rocklet_pid(admin, sid)):
            started = time.monotonic()
            body = {"sandbox_id": sid, "session": "s", "command": "echo hi", "check": "silent"}
            reply = failed(http.post("/run_in_session", json=body))
            assert 2.5 < time.monotonic() - started < 15
            assert "did not answer within 3 s" in reply["message"], reply
            execute = {"sandbox_id": sid, "command": "echo hi", "timeout": None}
            reply = failed(http.post("/execute", json=execute))  # the generic (streaming) path too
            assert "did not answer within 3 s" in reply["message"], reply
            assert _status(http, sid)["state"] == "running"  # health_timeout 0: reported, never failed
        made = httpx.post(
            f"{admin.url}/apis/v1/envs/gem/make", json={"env_id": "game:Sokoban-v0-easy"}, timeout=60
        )
        env = made.json()["sandbox_id"]
        with _frozen(_rocklet_pid(admin, env)):
            step = httpx.post(
                f"{admin.url}/apis/v1/envs/gem/step", json={"sandbox_id": env, "action": "up"}, timeout=60
            )
            assert step.status_code == 504 and "did not answer within 3 s" in step.json()["detail"], step.text
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "t"}))  # s got the echo on thaw
        assert run(http, sid, "echo thawed", session="t")["output"].strip() == "thawed"


@needs_root
def test_a_busy_healthy_sandbox_stays_running(tmp_path: Path) -> None:
    with (
        running_admin(tmp_path / "a", health_timeout="1", health_interval="0.3") as admin,
        admin.client() as http,
    ):
        sid = start_sandbox(http, sandbox_id="busy")
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        # 16 long commands fill the admin's connections to the rocklet: probes go on their own connection.
        bodies = [{"sandbox_id": sid, "command": "sleep 2", "timeout": 30} for _ in range(16)]
        threads = [threading.Thread(target=http.post, args=("/execute",), kwargs={"json": b}) for b in bodies]
        for t in threads:
            t.start()
        time.sleep(0.2)
        assert run(http, sid, "sleep 2; echo done", timeout=30)["output"].strip() == "done"
        for t in threads:
            t.join(60)
        status = _status(http, sid)
        assert status["state"] == "running" and status["is_alive"] is True, status
