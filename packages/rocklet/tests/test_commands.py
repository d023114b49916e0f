"""`/execute`: one-shot commands."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time

import httpx
import pytest

from rock.actions import Command
from rock.exceptions import CommandTimeoutError
from rocklet import commands
from rocklet.sessions.output import OutputBuffer
from rocklet.testing import error_of


def test_execute_list_and_string(http: httpx.Client) -> None:
    assert http.post("/execute", json={"command": ["echo", "a b"]}).json() == {
        "stdout": "a b\n",
        "stderr": "",
        "exit_code": 0,
    }
    assert http.post("/execute", json={"command": "echo 'a b'"}).json()["stdout"] == "a b\n"
    r = http.post("/execute", json={"command": "echo out; echo err >&2; exit 3", "shell": True}).json()
    assert r == {"stdout": "out\n", "stderr": "err\n", "exit_code": 3}


def test_execute_merge_env_cwd(http: httpx.Client, tmp_path) -> None:
    r = http.post(
        "/execute",
        json={
            "command": "echo $FOO; pwd; echo e >&2",
            "shell": True,
            "env": {"FOO": "bar"},
            "cwd": str(tmp_path),
            "merge_output_streams": True,
        },
    ).json()
    assert r["stdout"] == f"bar\n{tmp_path}\ne\n"
    assert r["stderr"] == ""


def test_execute_check_and_timeout(http: httpx.Client) -> None:
    err = error_of(
        http.post("/execute", json={"command": "false", "shell": True, "check": True, "error_msg": "boom"})
    )
    assert err["class_path"] == "rock.exceptions.NonZeroExitCodeError"
    assert err["message"].startswith("boom: ")
    err = error_of(
        http.post("/execute", json={"command": "echo begun; sleep 100", "shell": True, "timeout": 0.5})
    )
    assert err["class_path"] == "rock.exceptions.CommandTimeoutError"
    assert err["extra_info"]["stdout"] == "begun\n"


def test_execute_missing_program_and_cwd(http: httpx.Client) -> None:
    assert (
        error_of(http.post("/execute", json={"command": ["no-such-program-xyz"]}))["class_path"]
        == "builtins.FileNotFoundError"
    )
    err = error_of(http.post("/execute", json={"command": ["true"], "cwd": "/no/such/dir"}))
    assert err["class_path"] == "builtins.FileNotFoundError"


def test_execute_stdin_is_closed(http: httpx.Client) -> None:
    r = http.post("/execute", json={"command": ["cat"], "timeout": 10}).json()
    assert r == {"stdout": "", "stderr": "", "exit_code": 0}


def test_execute_binary_output(http: httpx.Client) -> None:
    r = http.post("/execute", json={"command": "printf 'a\\377b'", "shell": True}).json()
    assert r["stdout"] == "a\\xffb"


def test_execute_descendant_holding_the_pipes_does_not_hold_the_reply(http: httpx.Client) -> None:
    # The shell exits at once; its backgrounded child keeps stdout open for 30 s.
    t = time.monotonic()
    r = http.post("/execute", json={"command": "echo a; sleep 30 & echo b", "shell": True}).json()
    assert r == {"stdout": "a\nb\n", "stderr": "", "exit_code": 0}
    assert time.monotonic() - t < 15


def test_execute_output_is_bounded_head_and_tail(http: httpx.Client) -> None:
    # The fixture's rocklet keeps 1 MiB: the first and last lines survive, the middle is dropped.
    r = http.post(
        "/execute", json={"command": "echo first; head -c 5000000 /dev/zero; echo; echo last", "shell": True}
    ).json()
    assert r["exit_code"] == 0
    assert r["stdout"].startswith("first\n") and r["stdout"].endswith("last\n")
    assert len(r["stdout"]) < 1_050_000  # 1 MiB kept, plus the note
    assert "bytes of output dropped by the rocklet's output limit" in r["stdout"]


def test_execute_many_concurrent(http: httpx.Client) -> None:
    def one(i: int) -> dict:
        return http.post("/execute", json={"command": ["echo", str(i)]}).json()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(one, range(40)))
    assert [r["stdout"] for r in replies] == [f"{i}\n" for i in range(40)]


def test_output_buffer_keeps_at_most_its_limit() -> None:
    # Chunks that leave the lazily trimmed tail just under the trim point: what is taken is still the limit.
    buffer = OutputBuffer(4096)
    total = 0
    for i in range(40):
        chunk = bytes([65 + i % 26]) * 700
        buffer.append(chunk)
        total += len(chunk)
    captured = buffer.take_all()
    assert len(captured.head) + len(captured.tail) == 4096
    assert captured.dropped == total - 4096
    assert captured.tail.endswith(bytes([65 + 39 % 26]) * 700)


def test_execute_without_pidfd(monkeypatch: pytest.MonkeyPatch) -> None:
    # A kernel (or seccomp filter) without pidfd_open: the exit is awaited from a thread instead.
    def refuse(pid: int) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", refuse)
    command = Command(command="echo out; echo err >&2; exit 4", shell=True)
    reply = asyncio.run(commands.execute(command, max_output_bytes=1 << 20))
    assert (reply.stdout, reply.stderr, reply.exit_code) == ("out\n", "err\n", 4)
    with pytest.raises(CommandTimeoutError):
        asyncio.run(commands.execute(Command(command=["sleep", "30"], timeout=0.3), max_output_bytes=1 << 20))
