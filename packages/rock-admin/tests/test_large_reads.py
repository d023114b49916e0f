"""Large replies stream through the admin: reading back a 16 MB file or 16 MB of a background process's output
leaves the admin's peak memory where it was (before, the whole reply was held, then copied into the envelope)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rock_admin.testing import Admin, ok, running_admin, start_sandbox

SIZE = 16_000_000
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def own_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    """An admin of this module's alone: its peak memory (VmHWM) is what this module did to it."""
    with running_admin(tmp_path_factory.mktemp("admin-large")) as admin:
        yield admin


def _peak_rss(admin: Admin) -> int:
    assert admin.proc is not None
    for line in Path(f"/proc/{admin.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _streamed(http: httpx.Client, method: str, path: str, **kw: object) -> tuple[bytes, httpx.Headers]:
    with http.stream(method, path, **kw) as r:  # type: ignore[arg-type]
        assert r.status_code == 200
        return b"".join(r.iter_bytes()), r.headers


def test_large_file_and_process_output_stream_through_the_admin(own_admin: Admin) -> None:
    with own_admin.client() as http:
        sid = start_sandbox(http)
        try:
            make = f"head -c {SIZE} /dev/zero | tr '\\0' a > /tmp/big"
            ok(http.post("/execute", json={"sandbox_id": sid, "command": make, "shell": True}))
            # A small read first: the fast path (read at once) still answers as before.
            ok(
                http.post(
                    "/execute", json={"sandbox_id": sid, "command": "echo small > /tmp/small", "shell": True}
                )
            )
            small = ok(http.post("/read_file", json={"sandbox_id": sid, "path": "/tmp/small"}))
            assert small == {"content": "small\n"}  # type: ignore[comparison-overlap]
            before = _peak_rss(own_admin)

            body, headers = _streamed(
                http, "POST", "/read_file", json={"sandbox_id": sid, "path": "/tmp/big"}
            )
            assert int(headers["content-length"]) == len(body)
            reply = json.loads(body)
            assert reply["status"] == "Success" and reply["result"]["content"] == "a" * SIZE
            del body, reply

            command = f"head -c {SIZE} /dev/zero | tr '\\0' b"
            proc = ok(http.post("/processes", json={"sandbox_id": sid, "command": command, "shell": True}))
            pid = proc["process_id"]  # type: ignore[index]
            ok(http.post(f"/processes/{pid}/wait", json={"sandbox_id": sid, "timeout": 60}))
            body, _ = _streamed(http, "GET", f"/processes/{pid}/output", params={"sandbox_id": sid})
            out = json.loads(body)["result"]
            assert out["stdout"] == "b" * SIZE and out["stdout_offset"] == SIZE and out["exit_code"] == 0
            del body, out

            grown = _peak_rss(own_admin) - before
            # Holding either reply (and its envelope copy) would have taken >= 2 x 15 MiB.
            assert grown < 12 * MIB, f"the admin's peak memory grew by {grown / MIB:.1f} MiB"
            # Errors on the streamed path still come in the envelope.
            missing = http.post("/read_file", json={"sandbox_id": sid, "path": "/tmp/none"}).json()
            assert missing["status"] == "Failed" and "FileNotFoundError" in missing["message"]
            gone = http.get("/processes/nope/output", params={"sandbox_id": sid}).json()
            assert gone["status"] == "Failed" and "ProcessDoesNotExistError" in json.dumps(gone)
        finally:
            http.post("/stop", json={"sandbox_id": sid})
