"""The published runtime clients against a real rocklet of ours: SWE-ReX 1.4.0's `RemoteRuntime` (what
SWE-agent uses) and rl-rock 1.11.0's `RemoteSandboxRuntime`, each in `.venv-peers/upstream`, each expecting
its own exception classes back (SWE-agent catches `swerex.exceptions.CommandTimeoutError`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rocklet.testing import RunningRocklet, running_rocklet
from rocklet.testing_upstream import PEER_SKIP, run_upstream

pytestmark = PEER_SKIP
TOKEN = "compat-token"


@pytest.fixture(scope="module")
def rocklet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRocklet]:
    with running_rocklet(tmp_path_factory.mktemp("rocklet"), token=TOKEN) as r:
        yield r


SWEREX = r"""
import asyncio, json, os, tempfile
from pathlib import Path
from swerex import exceptions as ex
from swerex.runtime.abstract import (
    BashAction, BashInterruptAction, CloseBashSessionRequest, Command, CreateBashSessionRequest,
    ReadFileRequest, UploadRequest, WriteFileRequest,
)
from swerex.runtime.remote import RemoteRuntime

async def raised(coro):
    try:
        await coro
    except Exception as exc:
        return f"{type(exc).__module__}.{type(exc).__name__}"
    return None

async def main():
    rt = RemoteRuntime(host=os.environ["URL"], auth_token=os.environ["TOKEN"], timeout=10)
    out = {"alive": (await rt.is_alive()).is_alive}
    wrong = RemoteRuntime(host=os.environ["URL"], auth_token="wrong", timeout=10)
    out["wrong_token_alive"] = (await wrong.is_alive()).is_alive
    await rt.create_session(CreateBashSessionRequest(session="s"))
    obs = await rt.run_in_session(BashAction(session="s", command="export X=1; echo hi $X"))
    out["run"] = [obs.output, obs.exit_code]
    out["non_zero"] = await raised(rt.run_in_session(BashAction(session="s", command="false")))
    out["silent"] = (await rt.run_in_session(BashAction(session="s", command="(exit 3)", check="silent"))).exit_code
    out["timeout"] = await raised(rt.run_in_session(BashAction(session="s", command="sleep 30", timeout=0.3)))
    await rt.run_in_session(BashInterruptAction(session="s"))
    out["after_interrupt"] = (await rt.run_in_session(BashAction(session="s", command="echo $X"))).output
    out["syntax"] = await raised(rt.run_in_session(BashAction(session="s", command="echo (")))
    out["exists"] = await raised(rt.create_session(CreateBashSessionRequest(session="s")))
    out["no_session"] = await raised(rt.run_in_session(BashAction(session="nope", command="true")))
    out["no_file"] = await raised(rt.read_file(ReadFileRequest(path="/nonexistent/f")))
    cmd = await rt.execute(Command(command=["sh", "-c", "echo out; echo err >&2; exit 4"]))
    out["execute"] = [cmd.stdout, cmd.stderr, cmd.exit_code]
    out["execute_check"] = await raised(rt.execute(Command(command=["false"], check=True)))
    out["execute_timeout"] = await raised(rt.execute(Command(command=["sleep", "30"], timeout=0.3)))
    d = Path(tempfile.mkdtemp())
    await rt.write_file(WriteFileRequest(path=str(d / "w" / "a.txt"), content="written"))
    out["read"] = (await rt.read_file(ReadFileRequest(path=str(d / "w" / "a.txt")))).content
    src = d / "src"; (src / "sub").mkdir(parents=True); (src / "sub" / "f.txt").write_text("dir upload")
    await rt.upload(UploadRequest(source_path=str(src), target_path=str(d / "dst")))
    out["upload_dir"] = (d / "dst" / "sub" / "f.txt").read_text()
    await rt.close_session(CloseBashSessionRequest(session="s"))
    out["closed"] = await raised(rt.run_in_session(BashAction(session="s", command="true")))
    await rt.close()
    print(json.dumps(out))

asyncio.run(main())
"""


def test_swerex_remote_runtime_gets_its_own_exceptions(rocklet: RunningRocklet) -> None:
    out = run_upstream(SWEREX, URL=rocklet.url or "", TOKEN=TOKEN)
    assert out["alive"] is True and out["wrong_token_alive"] is False
    assert out["run"] == ["hi 1\n", 0] and out["silent"] == 3
    assert out["non_zero"] == "swerex.exceptions.NonZeroExitCodeError"
    assert out["timeout"] == "swerex.exceptions.CommandTimeoutError"
    assert out["after_interrupt"] == "1\n"  # the interrupted session lives on
    assert out["syntax"] == "swerex.exceptions.BashIncorrectSyntaxError"
    assert out["exists"] == "swerex.exceptions.SessionExistsError"
    assert out["no_session"] == "swerex.exceptions.SessionDoesNotExistError"
    assert out["no_file"] == "builtins.FileNotFoundError"
    assert out["execute"] == ["out\n", "err\n", 4]
    assert out["execute_check"] == "swerex.exceptions.NonZeroExitCodeError"
    assert out["execute_timeout"] == "swerex.exceptions.CommandTimeoutError"
    assert out["read"] == "written" and out["upload_dir"] == "dir upload"
    assert out["closed"] == "swerex.exceptions.SessionDoesNotExistError"


ROCK_RUNTIME = r"""
import asyncio, json, os
from rock.actions import BashAction, Command, CreateBashSessionRequest, ReadFileRequest, WriteFileRequest
from rock.sandbox.remote_sandbox import RemoteSandboxRuntime

async def raised(coro):
    try:
        await coro
    except Exception as exc:
        return f"{type(exc).__module__}.{type(exc).__name__}"
    return None

async def main():
    rt = RemoteSandboxRuntime(host=os.environ["URL"], timeout=10)
    out = {"alive": (await rt.is_alive()).is_alive}
    await rt.create_session(CreateBashSessionRequest(session="s", sandbox_id="x"))
    obs = await rt.run_in_session(BashAction(session="s", command="echo hi", sandbox_id="x"))
    out["run"] = [obs.output, obs.exit_code]
    out["non_zero"] = await raised(rt.run_in_session(BashAction(session="s", command="false", sandbox_id="x")))
    out["timeout"] = await raised(
        rt.run_in_session(BashAction(session="s", command="sleep 30", timeout=0.3, sandbox_id="x")))
    out["no_session"] = await raised(rt.run_in_session(BashAction(session="nope", command="true", sandbox_id="x")))
    cmd = await rt.execute(Command(command=["echo", "x"], sandbox_id="x"))
    out["execute"] = [cmd.stdout, cmd.exit_code]
    await rt.write_file(WriteFileRequest(path="/tmp/rock-compat.txt", content="w", sandbox_id="x"))
    out["read"] = (await rt.read_file(ReadFileRequest(path="/tmp/rock-compat.txt", sandbox_id="x"))).content
    print(json.dumps(out))

asyncio.run(main())
"""


def test_rock_remote_sandbox_runtime_gets_its_own_exceptions(rocklet: RunningRocklet) -> None:
    # Upstream's runtime client sends no X-API-Key: the token rides in the host URL (Basic auth).
    url = (rocklet.url or "").replace("http://", f"http://rock:{TOKEN}@")
    out = run_upstream(ROCK_RUNTIME, URL=url)
    # Stripped, as ROCK's own rocklet gives it; SWE-ReX's RemoteRuntime above keeps the newline ("hi 1\n").
    assert out["alive"] is True and out["run"] == ["hi", 0]
    assert out["non_zero"] == "rock.rocklet.exceptions.NonZeroExitCodeError"
    assert out["timeout"] == "rock.rocklet.exceptions.CommandTimeoutError"
    assert out["no_session"] == "rock.rocklet.exceptions.SessionDoesNotExistError"
    assert out["execute"] == ["x\n", 0] and out["read"] == "w"


NO_TOKEN = r"""
import asyncio, json, os
from rock.sandbox.remote_sandbox import RemoteSandboxRuntime
print(json.dumps((asyncio.run(RemoteSandboxRuntime(host=os.environ["URL"], timeout=10).is_alive())).is_alive))
"""


def test_rock_remote_sandbox_runtime_without_the_token_is_refused(rocklet: RunningRocklet) -> None:
    assert run_upstream(NO_TOKEN, URL=rocklet.url or "") is False
    wrong = (rocklet.url or "").replace("http://", "http://rock:wrong@")
    assert run_upstream(NO_TOKEN, URL=wrong) is False
