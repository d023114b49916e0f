"""The `env` of a sandbox's start request reaches everything that runs in it (upstream semantics): bash sessions
(`run_in_session`, the SDK's `arun`), `execute` and background processes. Through a real admin and its
process runtime (the zygote hands the env to the rocklet's config; the docker runtime passes it in
`ROCKLET_SESSION_ENV`, which the rocklet's own tests cover)."""

from __future__ import annotations

import asyncio

import httpx

from rock.sdk.sandbox.client import Sandbox
from rock.sdk.sandbox.config import SandboxConfig
from rock_admin.testing import Admin, ok, run, start_sandbox

START_ENV = {"START_ENV_VAR": "from start", "START_OTHER": "x=1;y"}


def _check_sandbox_sees_env(http: httpx.Client, sid: str) -> None:
    ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
    out = run(http, sid, 'printf "%s|%s" "$START_ENV_VAR" "$START_OTHER"')["output"]
    assert out == "from start|x=1;y"
    # A session's own env wins over the start env for the same name.
    ok(
        http.post(
            "/create_session",
            json={"sandbox_id": sid, "session": "own", "env": {"START_ENV_VAR": "own"}},
        )
    )
    assert run(http, sid, 'printf "%s" "$START_ENV_VAR"', session="own")["output"] == "own"
    res = ok(http.post("/execute", json={"sandbox_id": sid, "command": ["printenv", "START_ENV_VAR"]}))
    assert res["stdout"] == "from start\n"  # type: ignore[index]
    proc = ok(
        http.post(
            "/processes",
            json={"sandbox_id": sid, "command": 'printf "%s" "$START_ENV_VAR"', "shell": True},
        )
    )
    pid = proc["process_id"]  # type: ignore[index]
    ok(http.post(f"/processes/{pid}/wait", json={"sandbox_id": sid, "timeout": 30}))
    out = ok(http.get(f"/processes/{pid}/output", params={"sandbox_id": sid}))
    assert out["stdout"] == "from start"  # type: ignore[index]


def test_start_env_reaches_sessions_execute_and_processes(admin: Admin) -> None:
    with admin.client() as http:
        sid = start_sandbox(http, env=START_ENV)
        try:
            _check_sandbox_sees_env(http, sid)
        finally:
            ok(http.post("/stop", json={"sandbox_id": sid}))


def test_sdk_config_env_reaches_arun(admin: Admin) -> None:
    async def main() -> None:
        sandbox = Sandbox(SandboxConfig(base_url=admin.url, memory="512m", cpus=1, env=START_ENV))
        await sandbox.start()
        try:
            obs = await sandbox.arun('printf "%s" "$START_ENV_VAR"')
            assert obs.output == "from start"
            obs = await sandbox.arun('printf "%s" "$START_ENV_VAR"', mode="nohup")
            assert obs.output == "from start" and obs.exit_code == 0
        finally:
            await sandbox.close()

    asyncio.run(main())
