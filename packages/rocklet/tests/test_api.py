"""The HTTP surface: liveness, auth, bad bodies, sandbox_id, Unix socket transport."""

from __future__ import annotations

import httpx
import pytest

from rocklet.testing import RunningRocklet, error_of, run


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
