"""Upstream ROCK's `RemoteSandboxRuntime` (rl-rock 1.11.0, in `.venv-peers/upstream`, its own code unchanged)
drives a sandbox our admin started, through the admin's rocklet relay: it takes a base URL and sends no
`X-API-Key`, so the API key rides in the URL (Basic auth) and the admin adds the sandbox's token itself."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator

import httpx
import pytest

from rock_admin.testing import PREFIX, Admin, running_admin, start_sandbox
from rocklet.testing_upstream import PEER_SKIP, run_upstream

pytestmark = PEER_SKIP


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    with running_admin(tmp_path_factory.mktemp("admin"), api_keys="key-a,key-b") as a:
        yield a


def _relay(admin: Admin, key: str, sid: str) -> str:
    return admin.url.replace("http://", f"http://rock:{key}@") + f"{PREFIX}/sandboxes/{sid}/rocklet"


RUNTIME = r"""
import asyncio, json, os, tempfile
from pathlib import Path
from rock.actions import (BashAction, Command, CreateBashSessionRequest, ReadFileRequest, UploadRequest,
                          WriteFileRequest)
from rock.sandbox.remote_sandbox import RemoteSandboxRuntime

async def raised(coro):
    try:
        await coro
    except Exception as exc:
        return f"{type(exc).__module__}.{type(exc).__name__}"
    return None

async def main():
    sid = os.environ["SID"]
    rt = RemoteSandboxRuntime(host=os.environ["URL"], timeout=10)
    alive = await rt.is_alive()
    out = {"alive": [alive.is_alive, alive.message]}
    await rt.create_session(CreateBashSessionRequest(session="s", sandbox_id=sid))
    obs = await rt.run_in_session(BashAction(session="s", command="export X=1; echo hi $X", sandbox_id=sid))
    out["run"] = [obs.output, obs.exit_code]
    out["kept"] = (await rt.run_in_session(BashAction(session="s", command="echo $X", sandbox_id=sid))).output
    out["non_zero"] = await raised(rt.run_in_session(BashAction(session="s", command="false", sandbox_id=sid)))
    cmd = await rt.execute(Command(command=["sh", "-c", "echo out; exit 4"], sandbox_id=sid))
    out["execute"] = [cmd.stdout, cmd.exit_code]
    await rt.write_file(WriteFileRequest(path="/tmp/relay.txt", content="w", sandbox_id=sid))
    out["read"] = (await rt.read_file(ReadFileRequest(path="/tmp/relay.txt", sandbox_id=sid))).content
    with tempfile.TemporaryDirectory() as local:
        (Path(local) / "one.bin").write_bytes(bytes(range(256)) * 64)
        (Path(local) / "tree" / "sub").mkdir(parents=True)
        (Path(local) / "tree" / "sub" / "b.txt").write_text("in a tree")
        await rt.upload(UploadRequest(source_path=f"{local}/one.bin", target_path="/tmp/up/one.bin"))
        await rt.upload(UploadRequest(source_path=f"{local}/tree", target_path="/tmp/up/tree"))
    up = await rt.execute(Command(command=["sh", "-c", "md5sum /tmp/up/one.bin; cat /tmp/up/tree/sub/b.txt"], sandbox_id=sid))
    out["upload"] = up.stdout.split()
    for name, url in (("wrong", os.environ["WRONG"]), ("stranger", os.environ["STRANGER"])):
        other = RemoteSandboxRuntime(host=url, timeout=10)
        out[name] = [(await other.is_alive()).is_alive,
                     await raised(other.execute(Command(command=["true"], sandbox_id=sid)))]
    print(json.dumps(out))

asyncio.run(main())
"""


def test_upstream_runtime_drives_an_admin_sandbox_through_the_relay(admin: Admin) -> None:
    with admin.client(headers={"X-API-Key": "key-a"}) as a:
        sid = start_sandbox(a)
    out = run_upstream(
        RUNTIME,
        SID=sid,
        URL=_relay(admin, "key-a", sid),
        WRONG=_relay(admin, "wrong", sid),
        STRANGER=_relay(admin, "key-b", sid),
    )
    assert out["alive"] == [True, ""]
    # stripped, as ROCK's own rocklet gives it (SWE-ReX's clients get the newline: test_compat_swerex)
    assert out["run"] == ["hi 1", 0] and out["kept"] == "1"
    assert out["non_zero"] == "rock.rocklet.exceptions.NonZeroExitCodeError"  # the rocklet's 511, relayed
    assert out["execute"] == ["out\n", 4] and out["read"] == "w"
    # multipart uploads through the relay: a binary file as it was, a directory zipped and unpacked
    assert out["upload"] == [
        hashlib.md5(bytes(range(256)) * 64).hexdigest(),
        "/tmp/up/one.bin",
        "in",
        "a",
        "tree",
    ]
    # a wrong key and another key's caller are both refused; neither reaches the rocklet
    assert out["wrong"] == [False, "requests.exceptions.HTTPError"]
    assert out["stranger"] == [False, "requests.exceptions.HTTPError"]


def test_another_key_is_told_what_an_unused_id_is_told(admin: Admin) -> None:
    with admin.client(headers={"X-API-Key": "key-a"}) as a:
        sid = start_sandbox(a)
    nobody = uuid.uuid4().hex

    def answers(key: str, target: str) -> list[tuple[int, str]]:
        calls = [
            ("GET", "is_alive", None),
            ("POST", "execute", {"command": "echo pwned"}),
            ("GET", "nope", None),
        ]
        with httpx.Client(auth=("rock", key), timeout=30) as http:
            return [
                (r.status_code, r.text.replace(target, "ID"))
                for m, p, body in calls
                for r in [http.request(m, f"{admin.url}{PREFIX}/sandboxes/{target}/rocklet/{p}", json=body)]
            ]

    unknown = answers("key-b", nobody)
    assert unknown[0] == (404, '{"detail": "sandbox ID not found"}')
    assert answers("key-b", sid) == unknown
    assert answers("wrong", sid)[0][0] == 401
    mine = answers("key-a", sid)
    assert mine[0][0] == 200 and mine[1][0] == 200 and "pwned" in mine[1][1]
    assert mine[2][0] == 404 and "not relayed" in mine[2][1]  # only the runtime client's paths go through
    with httpx.Client(auth=("rock", "key-a"), timeout=30) as http:
        not_multipart = http.post(f"{admin.url}{PREFIX}/sandboxes/{sid}/rocklet/upload", json={"file": "x"})
    assert not_multipart.status_code == 415 and "multipart/form-data" in not_multipart.text
