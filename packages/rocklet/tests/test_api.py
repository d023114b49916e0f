"""The HTTP surface: liveness, auth, bad bodies, sandbox_id, Unix socket transport."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from rocklet.testing import RunningRocklet, error_of, run, running_rocklet


def test_root_and_is_alive(http: httpx.Client) -> None:
    assert http.get("/").json() == {"message": "hello world"}
    assert http.get("/is_alive").json() == {"is_alive": True, "message": ""}


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}])
def test_auth_required(rocklet: RunningRocklet, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=rocklet.url or "", headers=headers) as anon:
        for method, path in [
            ("GET", "/"),
            ("GET", "/is_alive"),
            ("POST", "/execute"),
            ("DELETE", "/nowhere"),
        ]:
            r = anon.request(method, path)
            assert r.status_code == 401
            assert r.json() == {"detail": "Invalid API Key"}


def test_malformed_json_and_wrong_types(http: httpx.Client) -> None:
    r = http.post("/execute", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"
    r = http.post("/execute", json={"command": "echo", "timeout": "soon"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "timeout"]
    r = http.post("/run_in_session", json={"action_type": "bash", "session": "x"})
    assert r.status_code == 422
    assert any(d["loc"][-1] == "command" for d in r.json()["detail"])
    r = http.post("/run_in_session", json={"action_type": "bash", "command": "x", "check": "maybe"})
    assert r.status_code == 422
    r = http.post("/create_session", content=b"")
    assert r.status_code == 422


def test_unknown_fields_are_ignored_and_sandbox_id_optional(http: httpx.Client) -> None:
    r = http.post("/execute", json={"command": ["echo", "x"], "sandbox_id": "sb-1", "future_field": 1})
    assert r.status_code == 200
    assert r.json()["stdout"] == "x\n"
    r = http.post("/execute", json={"command": ["echo", "y"]})
    assert r.json()["stdout"] == "y\n"


def test_unknown_route_and_method(http: httpx.Client) -> None:
    assert http.get("/nope").status_code == 404
    assert http.get("/execute").status_code == 405


def test_action_without_action_type_is_bash(http: httpx.Client, session: str) -> None:
    r = http.post("/run_in_session", json={"command": "echo implicit", "session": session})
    assert r.json()["output"] == "implicit\n"


def test_unix_socket(uds_rocklet: RunningRocklet) -> None:
    with uds_rocklet.client(timeout=30) as client:
        assert client.get("/is_alive").json()["is_alive"] is True
        assert client.post("/create_session", json={"session": "u"}).status_code == 200
        assert run(client, "u", "echo over-uds").json()["output"] == "over-uds\n"
        assert client.post("/close_session", json={"session": "u"}).status_code == 200
    with httpx.Client(transport=httpx.HTTPTransport(uds=uds_rocklet.uds), base_url="http://r") as anon:
        assert anon.get("/is_alive").status_code == 401


def test_close_closes_everything_and_names_are_reusable(uds_rocklet: RunningRocklet) -> None:
    with uds_rocklet.client(timeout=30) as client:
        client.post("/create_session", json={"session": "c1"})
        client.post("/processes", json={"command": "sleep 100", "process_id": "p-close"})
        assert client.post("/close").json() == {}
        assert error_of(run(client, "c1", "echo"))["class_path"].endswith("SessionDoesNotExistError")
        assert error_of(client.get("/processes/p-close"))["class_path"].endswith("ProcessDoesNotExistError")
        assert client.post("/create_session", json={"session": "c1"}).status_code == 200
        client.post("/close_session", json={"session": "c1"})


def test_statistics(http: httpx.Client) -> None:
    body = http.get("/get_statistics").json()
    for key in ("cpu", "mem", "disk", "net"):
        assert key in body
    assert 0 <= body["mem"] <= 100
    assert 0 < body["disk"] <= 100
    assert body["memory_used_bytes"] > 0
    assert body["source"] in ("cgroup_v1", "cgroup_v2", "host")


def test_bad_input_does_not_hurt_other_sessions(http: httpx.Client, session: str) -> None:
    run(http, session, "keep=1")
    http.post("/execute", content=b"\xff\xfe", headers={"content-type": "application/json"})
    http.post("/run_in_session", json={"action_type": "bash", "command": "(", "session": session})
    http.post("/read_file", json={"path": "/definitely/not/here"})
    assert run(http, session, "echo $keep").json()["output"] == "1\n"


# ---------------------------------------------------------------------------------- X-Request-ID replay


def _counted(counter, extra: str = "") -> str:
    """A command that appends one line to `counter` each time it runs."""
    return f"{extra}echo ran >> {counter}; echo done"


def test_request_id_replays_and_never_runs_twice(http: httpx.Client, session: str, tmp_path) -> None:
    counter = tmp_path / "count"
    headers = {"X-Request-ID": "rid-seq-1"}
    body = {"action_type": "bash", "command": _counted(counter), "session": session}
    first = http.post("/run_in_session", json=body, headers=headers)
    again = http.post("/run_in_session", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert counter.read_text() == "ran\n"
    # A new id runs again; an error reply is replayed like any other.
    assert http.post("/run_in_session", json=body, headers={"X-Request-ID": "rid-seq-2"}).status_code == 200
    assert counter.read_text() == "ran\nran\n"
    missing = {"X-Request-ID": "rid-missing"}
    e1 = http.post("/read_file", json={"path": str(tmp_path / "nope")}, headers=missing)
    (tmp_path / "nope").write_text("now here")
    e2 = http.post("/read_file", json={"path": str(tmp_path / "nope")}, headers=missing)
    assert e1.status_code == e2.status_code == 511 and e1.content == e2.content
    # The same id for another route is refused, not confused with the first.
    clash = http.post("/execute", json={"command": "true"}, headers=headers)
    assert clash.status_code == 409 and "already used for POST /run_in_session" in clash.json()["detail"]
    long_id = http.post("/execute", json={"command": "true"}, headers={"X-Request-ID": "x" * 300})
    assert long_id.status_code == 422 and "X-Request-ID" in long_id.json()["detail"]


def test_concurrent_duplicate_waits_for_the_first(rocklet: RunningRocklet, session: str, tmp_path) -> None:
    counter = tmp_path / "count"
    marker = tmp_path / "started"
    body = {
        "action_type": "bash",
        "command": _counted(counter, f"touch {marker}; sleep 1; "),
        "session": session,
    }
    headers = {"X-Request-ID": "rid-concurrent"}
    replies: dict[str, httpx.Response] = {}

    def send(key: str) -> None:
        with rocklet.client(timeout=30.0) as c:
            replies[key] = c.post("/run_in_session", json=body, headers=headers)

    first = threading.Thread(target=send, args=("first",))
    first.start()
    deadline = time.monotonic() + 20
    while not marker.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    send("duplicate")  # the session is busy, yet the duplicate is not refused: it gets the first's reply
    first.join(30)
    assert replies["first"].status_code == replies["duplicate"].status_code == 200
    assert replies["duplicate"].content == replies["first"].content
    assert replies["first"].json()["output"] == "done\n"
    assert counter.read_text() == "ran\n"


def test_request_runs_to_its_end_when_the_client_leaves(
    rocklet: RunningRocklet, session: str, tmp_path
) -> None:
    counter = tmp_path / "count"
    marker = tmp_path / "started"
    body = json.dumps(
        {
            "action_type": "bash",
            "command": _counted(counter, f"touch {marker}; sleep 0.5; "),
            "session": session,
        }
    ).encode()
    host, port = (rocklet.url or "").removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(
            b"POST /run_in_session HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\n"
            + f"X-API-Key: {rocklet.token}\r\nX-Request-ID: rid-dropped\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        deadline = time.monotonic() + 20
        while not marker.exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
    # The connection is gone mid-command; the retry gets the reply of the run that went on.
    with rocklet.client(timeout=30.0) as c:
        retry = c.post("/run_in_session", content=body, headers={"X-Request-ID": "rid-dropped"})
    assert retry.status_code == 200, retry.text
    assert retry.json()["output"] == "done\n"
    assert counter.read_text() == "ran\n"


def test_replay_cache_bounds(tmp_path) -> None:
    env = {"ROCKLET_REPLAY_MAX_ENTRIES": "2", "ROCKLET_REPLAY_MAX_ENTRY_BYTES": "4096"}
    counter = tmp_path / "count"
    with running_rocklet(tmp_path / "r", env=env) as info, info.client(timeout=30.0) as c:
        big = c.post(
            "/execute",
            json={"command": "head -c 10000 /dev/zero", "shell": True},
            headers={"X-Request-ID": "big"},
        )
        assert big.status_code == 200
        # Too large to keep: a retry is refused (409), not run a second time.
        again = c.post(
            "/execute",
            json={"command": "head -c 10000 /dev/zero", "shell": True},
            headers={"X-Request-ID": "big"},
        )
        assert again.status_code == 409 and "not run a second time" in again.json()["detail"]
        cmd = {"command": f"echo x >> {counter}", "shell": True}
        for rid in ("a", "b", "c"):  # three entries in a cache of two: "a" is dropped
            assert c.post("/execute", json=cmd, headers={"X-Request-ID": rid}).status_code == 200
        assert c.post("/execute", json=cmd, headers={"X-Request-ID": "c"}).status_code == 200
        assert counter.read_text() == "x\n" * 3
        assert c.post("/execute", json=cmd, headers={"X-Request-ID": "a"}).status_code == 200
        assert counter.read_text() == "x\n" * 4
