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
from rock.actions.envs.response import (
    EnvCloseResponse, EnvListResponse, EnvMakeResponse, EnvResetResponse, EnvStepResponse,
)
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
# An unknown image is accepted, as upstream; the status (without include_all_states) says why in image_pull.
ghost = check("start_async:unknown-image", SandboxStartResponse,
              http.post("/start_async", json={"image": "no-such-image:0"}))["result"]["sandbox_id"]
check("get_status:unknown-image", SandboxStatusResponse, http.get("/get_status", params={"sandbox_id": ghost}))

# A sandbox whose rocklet dies: upstream knows no `failed` state, its clients must still parse the status.
dead, status = start()
init = status["metadata"]["pid"]
rocklet = Path(f"/proc/{init}/task/{init}/children").read_text().split()[0]
os.kill(int(rocklet), signal.SIGKILL)
deadline = time.monotonic() + 30
while (died := all_states("get_status:died", dead) or {}).get("state") == "running" and time.monotonic() < deadline:
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
    raw("gem:list", EnvListResponse, gem.post("/list", json={"sandbox_id": env.sandbox_id}))
    raw("gem:close", EnvCloseResponse, gem.post("/close", json={"sandbox_id": env.sandbox_id}))
print(json.dumps(problems))
"""


def test_every_reply_validates_with_upstreams_models(admin: Admin) -> None:
    problems = run_upstream(AUDIT, timeout=240, ROCK_BASE_URL=admin.url)
    assert problems == {}, "\n".join(f"{op}: {why}" for op, why in problems.items())


# Our reply models and the upstream models their clients parse them with (rl-rock's and swe-rex's).
PAIRS = {
    "SandboxResponse": ["rock.actions.SandboxResponse"],
    "SandboxStatusResponse": ["rock.actions.SandboxStatusResponse"],
    "StateHistoryEntry": ["rock.actions.sandbox.response.StateTransitionRecord"],
    "RockResponse": ["rock.actions.BaseResponse"],
    "IsAliveResponse": ["rock.actions.IsAliveResponse", "swerex.runtime.abstract.IsAliveResponse"],
    "CommandResponse": ["rock.actions.CommandResponse", "swerex.runtime.abstract.CommandResponse"],
    "CreateBashSessionResponse": [
        "rock.actions.CreateBashSessionResponse",
        "swerex.runtime.abstract.CreateBashSessionResponse",
    ],
    "BashObservation": ["rock.actions.BashObservation", "swerex.runtime.abstract.BashObservation"],
    "CloseBashSessionResponse": [
        "rock.actions.CloseBashSessionResponse",
        "swerex.runtime.abstract.CloseBashSessionResponse",
    ],
    "ReadFileResponse": ["rock.actions.ReadFileResponse", "swerex.runtime.abstract.ReadFileResponse"],
    "WriteFileResponse": ["rock.actions.WriteFileResponse", "swerex.runtime.abstract.WriteFileResponse"],
    "UploadResponse": ["rock.actions.UploadResponse", "swerex.runtime.abstract.UploadResponse"],
    "CloseResponse": ["rock.actions.CloseResponse", "swerex.runtime.abstract.CloseResponse"],
    "EnvMakeResponse": ["rock.actions.EnvMakeResponse"],
    "EnvResetResponse": ["rock.actions.EnvResetResponse"],
    "EnvStepResponse": ["rock.actions.EnvStepResponse"],
    "EnvCloseResponse": ["rock.actions.EnvCloseResponse"],
    "EnvListResponse": ["rock.actions.EnvListResponse"],
}

SCHEMAS = r"""
import importlib, json, sys
out = {}
for path in json.loads(sys.argv[1]):
    module, _, name = path.rpartition(".")
    out[path] = getattr(importlib.import_module(module), name).model_json_schema(mode="validation")
print(json.dumps(out))
"""


def _kinds(schema: dict, defs: dict) -> set[str]:
    """The JSON values a schema allows, coarsely: types, `=value` for enums/consts, `any`."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rpartition("/")[2]]
        return (
            {"object"} if "properties" in target or target.get("type") == "object" else _kinds(target, defs)
        )
    if "anyOf" in schema or "oneOf" in schema:
        return set().union(*(_kinds(s, defs) for s in schema.get("anyOf", schema.get("oneOf", []))))
    if "const" in schema:
        return {f"={schema['const']}"}
    if "enum" in schema:
        return {f"={v}" for v in schema["enum"]}
    kind = schema.get("type")
    if kind is None:
        return {"any"}
    return set(kind) if isinstance(kind, list) else {kind}


def _accepts(theirs: set[str], kind: str) -> bool:
    if "any" in theirs or kind in theirs:
        return True
    if kind == "integer":
        return "number" in theirs
    return kind.startswith("=") and "string" in theirs and not any(t.startswith("=") for t in theirs)


def test_every_reply_model_matches_upstreams_field_by_field() -> None:
    """Types, nullability, required fields and enum values of each reply model against upstream's schema."""
    import json

    import rock.actions

    upstream = run_upstream(
        SCHEMAS.replace("sys.argv[1]", repr(json.dumps([p for ps in PAIRS.values() for p in ps]))), timeout=60
    )
    problems = []
    for ours_name, paths in PAIRS.items():
        ours = getattr(rock.actions, ours_name).model_json_schema(mode="serialization")
        our_props, our_defs = ours.get("properties", {}), ours.get("$defs", {})
        for path in paths:
            theirs = upstream[path]
            their_defs = theirs.get("$defs", {})
            for field, their_schema in theirs.get("properties", {}).items():
                if field not in our_props:
                    if field in theirs.get("required", []):
                        problems.append(f"{ours_name}.{field}: required by {path}, missing")
                    continue
                allowed = _kinds(their_schema, their_defs)
                wrong = [k for k in _kinds(our_props[field], our_defs) if not _accepts(allowed, k)]
                if wrong:
                    problems.append(f"{ours_name}.{field}: we send {wrong}, {path} takes {sorted(allowed)}")
    assert not problems, "\n".join(problems)
