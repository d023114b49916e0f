"""An admin killed with -9 and started again; API keys; the GEM API in both modes; the CLI's image store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from rock_admin.testing import Admin, failed, ok, run, running_admin, start_sandbox


def test_kill9_restart_keeps_sandboxes_and_api_keys(tmp_path: Path) -> None:
    with running_admin(tmp_path / "admin", api_keys="k1,k2") as admin:
        with admin.client() as anon:
            denied = anon.post("/start", json={})
            assert denied.status_code == 401 and denied.json()["status"] == "Failed"
            assert httpx.get(admin.url + "/metrics").status_code == 401
        with admin.client(headers={"X-API-Key": "k2"}) as http:
            sid = start_sandbox(http)
            stopped = start_sandbox(http)
            ok(http.post("/stop", json={"sandbox_id": stopped}))
            ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
            assert run(http, sid, "export KEEP=42; cd /tmp; echo set")["output"].strip() == "set"
        admin.kill9()
        admin.start()
        with admin.client(headers={"Authorization": "Bearer k2"}) as http:  # the key that started them
            listed = ok(http.get("/sandboxes"))
            states = {item["sandbox_id"]: item["state"] for item in listed["items"]}  # type: ignore[index]
            assert states[sid] == "running" and states[stopped] == "stopped"
            # Same sandbox, same shell: state survived the admin's death.
            assert run(http, sid, "echo $KEEP $(pwd)")["output"].strip() == "42 /tmp"
            history = ok(http.get("/get_status", params={"sandbox_id": sid}))["state_history"]  # type: ignore[index]
            assert [h["to_state"] for h in history] == ["running"]


def test_rocklet_token_is_per_sandbox(http: httpx.Client, admin: Admin) -> None:
    sid = start_sandbox(http)
    try:
        uds = ok(http.get("/get_status", params={"sandbox_id": sid}))["metadata"]["uds"]  # type: ignore[index]
        if len(uds) > 107:
            pytest.skip("socket path too long to reach directly from the test")
        with httpx.Client(transport=httpx.HTTPTransport(uds=uds), base_url="http://rocklet") as direct:
            assert direct.get("/is_alive").status_code == 401  # without its token nobody drives it
    finally:
        http.post("/stop", json={"sandbox_id": sid})


def _gem(admin: Admin, op: str, body: dict) -> dict:
    r = httpx.post(f"{admin.url}/apis/v1/envs/gem/{op}", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("mode", ["sandbox", "pooled"])
def test_gem_api_both_modes(admin: Admin, mode: str) -> None:
    made = _gem(admin, "make", {"env_id": "game:Sokoban-v0-easy", "mode": mode})
    env = made["sandbox_id"]
    assert ("/" in env) == (mode == "pooled")
    observation, _info = _gem(admin, "reset", {"sandbox_id": env, "seed": 42}).values()
    assert isinstance(observation, str) and observation
    again = _gem(admin, "reset", {"sandbox_id": env, "seed": 42})
    assert again["observation"] == observation  # seeded
    step = _gem(admin, "step", {"sandbox_id": env, "action": "\\boxed{up}"})
    assert set(step) >= {"observation", "reward", "terminated", "truncated", "info"}
    assert isinstance(step["reward"], float)
    listed = _gem(admin, "list", {})
    assert any("Sokoban" in e for e in listed["env_id"])
    _gem(admin, "close", {"sandbox_id": env})
    gone = httpx.post(
        f"{admin.url}/apis/v1/envs/gem/step", json={"sandbox_id": env, "action": "x"}, timeout=30
    )
    assert gone.status_code in (400, 404) and "detail" in gone.json()


def test_gem_bad_input(admin: Admin) -> None:
    r = httpx.post(f"{admin.url}/apis/v1/envs/gem/make", json={"env_id": "game:NoSuchGame-v0"}, timeout=60)
    assert r.status_code == 400 and "NoSuchGame" in r.json()["detail"]
    r = httpx.post(f"{admin.url}/apis/v1/envs/gem/reset", json={"sandbox_id": "nope"}, timeout=30)
    assert r.status_code == 404


def test_image_cli_and_unknown_image(tmp_path: Path, http: httpx.Client) -> None:
    state = tmp_path / "state"
    out = subprocess.run(
        [sys.executable, "-m", "rock_admin", "image", "list", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "host" in out and "python:3.11" in out
    rootfs = tmp_path / "rootfs"
    for d in ("bin", "usr", "etc"):
        (rootfs / d).mkdir(parents=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "rock_admin",
            "image",
            "import",
            "tiny:1",
            str(rootfs),
            "--state-dir",
            str(state),
        ],
        check=True,
        capture_output=True,
    )
    assert (
        "tiny:1"
        in subprocess.run(
            [sys.executable, "-m", "rock_admin", "image", "list", "--state-dir", str(state)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "rock_admin",
            "image",
            "import",
            "x",
            str(tmp_path / "missing"),
            "--state-dir",
            str(state),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "not a directory or a tar archive" in bad.stderr
    assert "available images" in failed(http.post("/start", json={"image": "tiny:2"}))["message"]


def test_bad_backend_settings_stop_the_admin_naming_the_setting(tmp_path: Path) -> None:
    cases = {
        "ROCK_ADMIN_RUNTIME=ray": "use scheduler: ray",
        "ROCK_ADMIN_RUNTIME=kubernetes": "runtime: unknown runtime 'kubernetes'",
        "ROCK_ADMIN_SCHEDULER=slurm": "scheduler: expected local or ray",
        "ROCK_ADMIN_STORE=etcd": "store",
    }
    for setting, message in cases.items():
        key, value = setting.split("=")
        r = subprocess.run(
            [sys.executable, "-m", "rock_admin", "serve", "--state-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            env={**__import__("os").environ, key: value},
            timeout=60,
        )
        assert r.returncode == 2 and message in r.stderr, (setting, r.stderr[-500:])


def test_isolation_none_still_serves(tmp_path: Path) -> None:
    """The fallback for hosts without root: plain forked rocklets; the status says so."""
    with running_admin(tmp_path / "admin", isolation="none") as admin, admin.client() as http:
        sid = start_sandbox(http)
        status = ok(http.get("/get_status", params={"sandbox_id": sid}))
        assert status["isolation"] == "none"  # type: ignore[index]
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        assert run(http, sid, "echo plain")["output"].strip() == "plain"
        ok(http.post("/stop", json={"sandbox_id": sid}))


def test_zygote_killed_is_replaced(http: httpx.Client, admin: Admin) -> None:
    """Sandboxes outlive their zygote; the next start brings up a new one."""
    import os
    import signal

    sid = start_sandbox(http)
    old = int((admin.state_dir / "zygote.pid").read_text())
    os.kill(old, signal.SIGKILL)
    ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
    assert run(http, sid, "echo still")["output"].strip() == "still"
    sid2 = start_sandbox(http)
    assert int((admin.state_dir / "zygote.pid").read_text()) != old
    for s in (sid, sid2):
        http.post("/stop", json={"sandbox_id": s})
