"""An upstream-style client, shaped exactly as SWE-ReX's RemoteRuntime talks (reference gem_swerex.md B3):
JSON bodies that are the upstream models' `model_dump()`, `X-API-Key` and `X-Request-ID` headers, multipart
upload with `file`/`target_path`/`unzip`, errors read from `swerexception` and re-raised by class path."""

from __future__ import annotations

import builtins
import importlib
import shutil
import uuid
from pathlib import Path
from typing import Any

import httpx

from rocklet.testing import RunningRocklet

# Bodies exactly as swe-rex 1.4's pydantic models dump them (defaults included).
CREATE_SESSION = {"startup_source": [], "session": "default", "session_type": "bash", "startup_timeout": 1.0}
BASH_ACTION = {
    "command": "",
    "session": "default",
    "timeout": None,
    "is_interactive_command": False,
    "is_interactive_quit": False,
    "check": "raise",
    "error_msg": "",
    "expect": [],
    "action_type": "bash",
}
INTERRUPT = {
    "session": "default",
    "timeout": 0.2,
    "n_retry": 3,
    "expect": [],
    "action_type": "bash_interrupt",
}
CLOSE_SESSION = {"session": "default", "session_type": "bash"}
COMMAND = {
    "command": "",
    "timeout": None,
    "shell": False,
    "check": False,
    "error_msg": "",
    "env": None,
    "cwd": None,
    "merge_output_streams": False,
}


class UpstreamStyleRuntime:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def _request(self, endpoint: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        headers = {"X-API-Key": self.token, "X-Request-ID": str(uuid.uuid4())}
        # A fresh connection per request, as upstream does.
        r = httpx.post(f"{self.url}/{endpoint}", json=payload, headers=headers, timeout=60)
        self._handle(r)
        return r.json()

    def _handle(self, r: httpx.Response) -> None:
        if r.status_code == 511:
            exc = r.json()["swerexception"]
            module_name, _, name = exc["class_path"].rpartition(".")
            # swe-rex is not installed here (test_compat_swerex runs the real client): ours mirror its classes.
            module_name = "rock.exceptions" if module_name == "swerex.exceptions" else module_name
            module = builtins if module_name == "builtins" else importlib.import_module(module_name)
            error = getattr(module, name)(exc["message"])
            error.extra_info = exc["extra_info"]
            raise error
        r.raise_for_status()

    def is_alive(self) -> bool:
        r = httpx.get(f"{self.url}/is_alive", headers={"X-API-Key": self.token}, timeout=5)
        return r.status_code == 200 and r.json()["is_alive"]

    def upload(self, source: Path, target: str) -> None:
        unzip = source.is_dir()
        if unzip:
            source = Path(shutil.make_archive(str(source.parent / "zipped"), "zip", source))
        with source.open("rb") as f:
            r = httpx.post(
                f"{self.url}/upload",
                files={"file": f},
                data={"target_path": target, "unzip": "true" if unzip else "false"},
                headers={"X-API-Key": self.token},
            )
        self._handle(r)


def test_upstream_style_client_unchanged(rocklet: RunningRocklet, tmp_path: Path) -> None:
    rt = UpstreamStyleRuntime(rocklet.url or "", rocklet.token)
    assert rt.is_alive()
    assert httpx.get(f"{rt.url}/", headers={"X-API-Key": rt.token}).json() == {"message": "hello world"}
    assert rt._request("create_session", CREATE_SESSION) == {"output": "", "session_type": "bash"}
    try:
        obs = rt._request("run_in_session", {**BASH_ACTION, "command": "echo 'hello world'"})
        assert obs == {
            "output": "hello world\n",
            "exit_code": 0,
            "failure_reason": "",
            "expect_string": "",
            "session_type": "bash",
        }
        try:
            rt._request("run_in_session", {**BASH_ACTION, "command": "false"})
        except RuntimeError as exc:
            assert type(exc).__name__ == "NonZeroExitCodeError"
        else:
            raise AssertionError("expected NonZeroExitCodeError")
        try:
            rt._request("run_in_session", {**BASH_ACTION, "command": "sleep 50", "timeout": 0.3})
        except TimeoutError as exc:
            assert type(exc).__name__ == "CommandTimeoutError"
        else:
            raise AssertionError("expected CommandTimeoutError")
        assert rt._request("run_in_session", INTERRUPT)["exit_code"] == 0
        assert rt._request("run_in_session", {**BASH_ACTION, "command": "echo ok"})["output"] == "ok\n"
        try:
            rt._request("create_session", CREATE_SESSION)
        except ValueError as exc:
            assert type(exc).__name__ == "SessionExistsError"
        else:
            raise AssertionError("expected SessionExistsError")
    finally:
        assert rt._request("close_session", CLOSE_SESSION) == {"session_type": "bash"}

    out = rt._request("execute", {**COMMAND, "command": ["echo", "x"]})
    assert out == {"stdout": "x\n", "stderr": "", "exit_code": 0}
    path = tmp_path / "f.txt"
    rt._request("write_file", {"content": "abc", "path": str(path)})
    assert rt._request("read_file", {"path": str(path), "encoding": None, "errors": None}) == {
        "content": "abc"
    }
    try:
        rt._request("read_file", {"path": str(tmp_path / "missing"), "encoding": None, "errors": None})
    except FileNotFoundError:
        pass
    else:
        raise AssertionError("expected FileNotFoundError")
    src = tmp_path / "srcdir"
    (src / "inner").mkdir(parents=True)
    (src / "inner" / "x.txt").write_text("x")
    rt.upload(src, str(tmp_path / "dest"))
    assert (tmp_path / "dest" / "inner" / "x.txt").read_text() == "x"
    rt.upload(path, str(tmp_path / "single" / "copy.txt"))
    assert (tmp_path / "single" / "copy.txt").read_text() == "abc"
    assert rt._request("close", None) == {}


def test_rock_style_bodies_with_sandbox_id(rocklet: RunningRocklet) -> None:
    """ROCK's admin forwards its Sandbox* models, which add sandbox_id and a few fields."""
    rt = UpstreamStyleRuntime(rocklet.url or "", rocklet.token)
    rt._request(
        "create_session",
        {
            "session_type": "bash",
            "session": "rock",
            "startup_source": [],
            "env_enable": False,
            "env": None,
            "remote_user": None,
            "startup_timeout": 1.0,
            "max_read_size": 2000,
            "sandbox_id": "sbx",
        },
    )
    obs = rt._request(
        "run_in_session", {**BASH_ACTION, "command": "echo r", "session": "rock", "sandbox_id": "sbx"}
    )
    assert obs["output"] == "r\n"
    out = rt._request(
        "execute",
        {
            "session_type": "bash",
            "command": "echo y",
            "timeout": 1200,
            "env": None,
            "cwd": None,
            "shell": True,
            "check": False,
            "error_msg": "",
            "sandbox_id": "sbx",
        },
    )
    assert out["stdout"] == "y\n"
    rt._request("close_session", {"session_type": "bash", "session": "rock", "sandbox_id": "sbx"})
