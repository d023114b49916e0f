"""Our admin's replies, validated field by field with upstream ROCK's own pydantic models (rl-rock 1.11.0).

The published SDK runs in its own venv (`.venv-peers/upstream`, made by scripts/peers-venv.sh): a script there
calls every endpoint over raw HTTP and validates each envelope as `RockResponse[<upstream model>]`, so a type,
an optionality or an enum value upstream would reject (a float time, a null `from_state`, a state upstream does
not know) fails here with the field's name.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rock_admin.testing import Admin, running_admin
from rocklet.testing_upstream import PEER_SKIP, run_upstream

pytestmark = PEER_SKIP


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    with running_admin(tmp_path_factory.mktemp("admin")) as a:
        yield a


AUDIT = r"""
import json, os, signal, sys, time
from pathlib import Path
import httpx
from rock.actions import (
    BashObservation, CloseBashSessionResponse, CommandResponse, CreateBashSessionResponse, IsAliveResponse,
    ReadFileResponse, RockResponse, SandboxResponse, SandboxStatusResponse, UploadResponse, WriteFileResponse,
)
from rock.actions.envs.response import EnvCloseResponse, EnvMakeResponse, EnvResetResponse, EnvStepResponse
from rock._codes import codes

# rock.admin.proto.response needs the admin's deps (sqlalchemy...): its two reply models, as there, on the SDK's.
class SandboxStartResponse(SandboxResponse):
    sandbox_id: str | None = None
    host_name: str | None = None
    host_ip: str | None = None
    cpus: float | None = None
    memory: str | None = None
    disk: str | None = None

class SandboxListResponse(SandboxResponse):
    items: list[SandboxStatusResponse] = []
    total: int = 0
    has_more: bool = False

base = os.environ["ROCK_BASE_URL"]
http = httpx.Client(base_url=base + "/apis/envs/sandbox/v1", timeout=60, headers={"X-Cluster": "vpc-nt-a"})
problems = {}

def check(op, model, reply):
    body = reply.json()
    try:
        parsed = RockResponse[model].model_validate(body)
    except Exception as exc:
        problems[op] = str(exc)
        return body
    if parsed.status != "Success":
        problems[op] = f"status {parsed.status}: {body}"
    return body

def failed(op, reply):
    # A failed call: the envelope says Failed and `result` (when given) is upstream's SandboxResponse.
    body = reply.json()
    try:
        parsed = RockResponse[SandboxResponse].model_validate(body)
        assert parsed.status == "Failed", body
        if parsed.result is not None and parsed.result.code is not None:
            codes(parsed.result.code)
    except Exception as exc:
        problems[op] = str(exc)
    return body

def start():
    body = {"image": "python:3.11", "memory": "1g", "cpus": 1, "auto_clear_time_minutes": 5, "startup_timeout": 60}
    sid = check("start_async", SandboxStartResponse, http.post("/start_async", json=body))["result"]["sandbox_id"]
    deadline = time.monotonic() + 60
    while True:
        status = check("get_status:pending/running", SandboxStatusResponse,
                       http.get("/get_status", params={"sandbox_id": sid}))["result"]
        if status and status["is_alive"] or time.monotonic() > deadline:
            return sid, status
        time.sleep(0.1)

def all_states(op, sid):
    return check(op, SandboxStatusResponse,
                 http.get("/get_status", params={"sandbox_id": sid, "include_all_states": "true"}))["result"]

sid, status = start()
q = {"sandbox_id": sid}
check("is_alive", IsAliveResponse, http.get("/is_alive", params=q))
check("create_session", CreateBashSessionResponse,
      http.post("/create_session", json={**q, "session": "s", "session_type": "bash"}))
run = {**q, "action_type": "bash", "session": "s", "command": "echo hi", "check": "silent", "timeout": 30}
check("run_in_session", BashObservation, http.post("/run_in_session", json=run))
failed("run_in_session:non-zero", http.post("/run_in_session", json={**run, "command": "(exit 3)", "check": "raise"}))
check("execute", CommandResponse, http.post("/execute", json={**q, "command": ["echo", "x"], "timeout": 30}))
check("write_file", WriteFileResponse, http.post("/write_file", json={**q, "path": "/tmp/a.txt", "content": "a"}))
check("read_file", ReadFileResponse, http.post("/read_file", json={**q, "path": "/tmp/a.txt"}))
check("upload", UploadResponse,
      http.post("/upload", data={**q, "target_path": "/tmp/u.txt"}, files={"file": ("u.txt", b"u")}))
check("close_session", CloseBashSessionResponse,
      http.post("/close_session", json={**q, "session": "s", "session_type": "bash"}))
check("sandboxes", SandboxListResponse, http.get("/sandboxes", params={"page": 1, "page_size": 10}))
check("stop", str, http.post("/stop", json=q))
all_states("get_status:stopped", sid)
check("restart", object, http.post("/restart", json=q))
deadline = time.monotonic() + 60
while not (all_states("get_status:restarted", sid) or {}).get("is_alive") and time.monotonic() < deadline:
    time.sleep(0.1)
check("stop:again", str, http.post("/stop", json=q))
check("delete", object, http.post("/delete", json=q))
all_states("get_status:deleted", sid)
failed("get_status:unknown", http.get("/get_status", params={"sandbox_id": "no-such-sandbox"}))
failed("execute:stopped", http.post("/execute", json={**q, "command": ["true"]}))
failed("start_async:unknown-image", http.post("/start_async", json={"image": "no-such-image:0"}))

# A sandbox whose rocklet dies: upstream knows no `failed` state, its clients must still parse the status.
dead, status = start()
init = status["metadata"]["pid"]
rocklet = Path(f"/proc/{init}/task/{init}/children").read_text().split()[0]
os.kill(int(rocklet), signal.SIGKILL)
deadline = time.monotonic() + 30
while (died := all_states("get_status:died", dead) or {}).get("is_alive") and time.monotonic() < deadline:
    time.sleep(0.1)
if not (died.get("state") == "stopped" and died.get("failure_reason")):
    problems["get_status:died"] = f"expected stopped with a failure_reason: {died}"
listed = http.get("/sandboxes", params={"state": "stopped"}).json()["result"]["items"]
if dead not in [item["sandbox_id"] for item in listed]:
    problems["sandboxes:stopped"] = "a failed sandbox is not listed as stopped"
http.post("/stop", json={"sandbox_id": dead})

gem = httpx.Client(base_url=base + "/apis/v1/envs/gem", timeout=60)
def raw(op, model, reply):
    try:
        return model.model_validate(reply.json())
    except Exception as exc:
        problems[op] = f"{exc}: {reply.text[:300]}"
env = raw("gem:make", EnvMakeResponse, gem.post("/make", json={"env_id": "game:Sokoban-v0-easy"}))
if env is not None:
    raw("gem:reset", EnvResetResponse, gem.post("/reset", json={"sandbox_id": env.sandbox_id, "seed": 1}))
    raw("gem:step", EnvStepResponse, gem.post("/step", json={"sandbox_id": env.sandbox_id, "action": r"\boxed{up}"}))
    raw("gem:close", EnvCloseResponse, gem.post("/close", json={"sandbox_id": env.sandbox_id}))
print(json.dumps(problems))
"""


def test_every_reply_validates_with_upstreams_models(admin: Admin) -> None:
    problems = run_upstream(AUDIT, timeout=240, ROCK_BASE_URL=admin.url)
    assert problems == {}, "\n".join(f"{op}: {why}" for op, why in problems.items())
