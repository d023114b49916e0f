"""Background processes: real exit codes, incremental output, kill, streaming."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from rocklet.processes import truncation_marker
from rocklet.testing import error_of, running_rocklet


def _wait(http: httpx.Client, pid: str, timeout: float = 30) -> dict:
    r = http.post(f"/processes/{pid}/wait", json={"timeout": timeout})
    assert r.status_code == 200, r.text
    return r.json()


def test_exit_code_and_output(http: httpx.Client) -> None:
    r = http.post("/processes", json={"command": "echo out; echo err >&2; exit 7"})
    assert r.status_code == 200, r.text
    pid = r.json()["process_id"]
    info = _wait(http, pid)
    assert info["running"] is False
    assert info["exit_code"] == 7
    out = http.get(f"/processes/{pid}/output").json()
    assert out["stdout"] == "out\n"
    assert out["stderr"] == "err\n"
    assert out["exit_code"] == 7
    assert http.delete(f"/processes/{pid}").status_code == 200
    assert error_of(http.get(f"/processes/{pid}"))["class_path"] == "rock.exceptions.ProcessDoesNotExistError"


def test_incremental_output(http: httpx.Client) -> None:
    pid = http.post(
        "/processes",
        json={
            "command": "echo one; read -t 100 x < /tmp/never-a-fifo-$$ 2>/dev/null; sleep 0.5; echo two",
            "process_id": "inc-1",
        },
    ).json()["process_id"]
    seen = ""
    offset = 0
    deadline = time.monotonic() + 30
    while "two" not in seen and time.monotonic() < deadline:
        out = http.get(f"/processes/{pid}/output", params={"stdout_offset": offset}).json()
        seen += out["stdout"]
        offset = out["stdout_offset"]
        time.sleep(0.05)
    assert seen == "one\ntwo\n"
    assert _wait(http, pid)["exit_code"] == 0
    http.delete(f"/processes/{pid}")


def test_kill_gives_signal_exit_code(http: httpx.Client) -> None:
    pid = http.post("/processes", json={"command": ["sleep", "100"], "shell": False}).json()["process_id"]
    assert http.get(f"/processes/{pid}").json()["running"] is True
    info = http.post(f"/processes/{pid}/kill", json={"signal": "KILL"}).json()
    info = _wait(http, pid)
    assert info["exit_code"] == 137
    assert info["signal"] == 9
    pid2 = http.post("/processes", json={"command": "sleep 100 & sleep 100; wait"}).json()["process_id"]
    http.post(f"/processes/{pid2}/kill", json={})
    assert _wait(http, pid2)["exit_code"] == 143
    listed = {p["process_id"] for p in http.get("/processes").json()["processes"]}
    assert {pid, pid2} <= listed
    for p in (pid, pid2):
        http.delete(f"/processes/{p}")


def test_wait_timeout_returns_running(http: httpx.Client) -> None:
    pid = http.post("/processes", json={"command": "sleep 100"}).json()["process_id"]
    assert _wait(http, pid, timeout=0.2)["running"] is True
    http.delete(f"/processes/{pid}")


def test_stream_output_as_produced(http: httpx.Client) -> None:
    pid = http.post("/processes", json={"command": "for i in 1 2 3; do echo line$i; sleep 0.2; done"}).json()[
        "process_id"
    ]
    chunks = []
    with http.stream("GET", f"/processes/{pid}/stream") as r:
        assert r.status_code == 200
        for chunk in r.iter_raw():
            chunks.append(chunk)
    assert b"".join(chunks) == b"line1\nline2\nline3\n"
    assert len(chunks) >= 2  # it arrived in pieces, as produced
    http.delete(f"/processes/{pid}")


def test_process_errors(http: httpx.Client) -> None:
    http.post("/processes", json={"command": "true", "process_id": "dup"})
    assert error_of(http.post("/processes", json={"command": "true", "process_id": "dup"}))[
        "class_path"
    ].endswith("ProcessExistsError")
    assert (
        error_of(http.post("/processes", json={"command": "true", "process_id": "../x"}))["class_path"]
        == "builtins.ValueError"
    )
    assert (
        error_of(http.post("/processes/dup/kill", json={"signal": "NOPE"}))["class_path"]
        == "builtins.ValueError"
    )
    assert error_of(http.get("/processes/nope/output"))["class_path"].endswith("ProcessDoesNotExistError")
    http.delete("/processes/dup")


def test_output_files_are_capped_with_a_marker(tmp_path: Path) -> None:
    cap = 100_000
    with (
        running_rocklet(tmp_path, extra_args=["--max-process-output-bytes", str(cap)]) as r,
        r.client() as http,
    ):
        # 20 MB of stdout, then a line on stderr: the process runs to its end (never blocked on a full pipe).
        command = "head -c 20000000 /dev/zero | tr '\\0' a; echo done >&2"
        pid = http.post("/processes", json={"command": command, "process_id": "big"}).json()["process_id"]
        info = _wait(http, pid, timeout=60)
        assert info["exit_code"] == 0
        marker = truncation_marker(cap)
        assert info["stdout_bytes"] == cap + len(marker)
        out = http.get(f"/processes/{pid}/output").json()
        assert out["stdout"] == "a" * cap + marker.decode()
        assert "output truncated at 100000 bytes" in out["stdout"]
        assert out["stderr"] == "done\n"
        on_disk = tmp_path / "state" / "processes" / "big.stdout"
        assert on_disk.stat().st_size == cap + len(marker)
        # Streamed reads end at the marker too.
        streamed = http.get(f"/processes/{pid}/stream").content
        assert streamed.endswith(marker) and len(streamed) == cap + len(marker)


def test_output_cap_must_be_positive(tmp_path: Path) -> None:
    bad = running_rocklet(tmp_path, extra_args=["--max-process-output-bytes", "0"], startup_timeout=20)
    with pytest.raises(RuntimeError, match="max_process_output_bytes"), bad:
        pass
