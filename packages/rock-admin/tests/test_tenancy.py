"""API keys are tenants (issue 11 §1): a sandbox belongs to the key (and `X-User-Id` / `X-Namespace`) that
started it; to any other caller it does not exist — the very answer a never-used id gets — on every route;
an admin key sees and drives them all."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rock_admin.testing import Admin, failed, ok, run, running_admin, start_sandbox

A = {"X-API-Key": "key-a"}
B = {"X-API-Key": "key-b"}
ROOT = {"X-API-Key": "key-admin"}
GEM = "/apis/v1/envs/gem"


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    with running_admin(
        tmp_path_factory.mktemp("tenancy"), api_keys="key-a,key-b", admin_keys="key-admin"
    ) as a:
        yield a


def _calls(sid: str) -> list[tuple[str, str, dict]]:
    """Every sandbox-scoped route: (method, path, params or body)."""
    return [
        ("GET", "/get_status", {"sandbox_id": sid, "include_all_states": "true"}),
        ("GET", "/is_alive", {"sandbox_id": sid}),
        ("GET", "/get_sandbox_statistics", {"sandbox_id": sid}),
        ("POST", "/run_in_session", {"sandbox_id": sid, "session": "s", "command": "echo pwned"}),
        ("POST", "/execute", {"sandbox_id": sid, "command": "echo pwned"}),
        ("POST", "/create_session", {"sandbox_id": sid, "session": "t"}),
        ("POST", "/read_file", {"sandbox_id": sid, "path": "/etc/hostname"}),
        ("POST", "/write_file", {"sandbox_id": sid, "path": "/tmp/x", "content": "x"}),
        ("GET", "/download", {"sandbox_id": sid, "path": "/etc/hostname"}),
        ("GET", "/processes", {"sandbox_id": sid}),
        ("POST", "/processes", {"sandbox_id": sid, "command": "sleep 1"}),
        ("POST", "/restart", {"sandbox_id": sid}),
        ("POST", f"/sandboxes/{sid}/restart", {}),
        ("POST", "/stop", {"sandbox_id": sid}),
        ("POST", "/delete", {"sandbox_id": sid}),
    ]


def _started(http: httpx.Client) -> str:
    """A running sandbox with bash session `s`."""
    sid = start_sandbox(http)
    ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
    return sid


def _send(http: httpx.Client, method: str, path: str, args: dict) -> httpx.Response:
    if method == "GET":
        return http.get(path, params=args)
    return http.post(path, json=args)


def _as_stranger(http: httpx.Client, sid: str) -> list[str]:
    """Each route's answer for `sid`, with the id written as ID (to compare with a never-used id's)."""
    return [_send(http, m, p, a).text.replace(sid, "ID") for m, p, a in _calls(sid)]


def test_another_key_or_user_is_told_the_sandbox_does_not_exist(admin: Admin) -> None:
    with admin.client(headers=A) as a, admin.client(headers=B) as b:
        sid = _started(a)
        assert run(a, sid, "echo mine")["output"].strip() == "mine"
        nobody = uuid.uuid4().hex
        unknown = _as_stranger(b, nobody)
        assert "not found" in unknown[0]
        assert _as_stranger(b, sid) == unknown  # key B: every route answers as for an id nobody uses
        with admin.client(headers={**A, "X-User-Id": "mallory"}) as same_key_other_user:
            assert _as_stranger(same_key_other_user, sid) == unknown
        with admin.client(headers={**A, "X-Namespace": "other"}) as same_key_other_namespace:
            assert _as_stranger(same_key_other_namespace, sid) == unknown
        listed = ok(b.get("/sandboxes"))
        assert sid not in [item["sandbox_id"] for item in listed["items"]]  # type: ignore[index]
        # Nothing above touched it: still running, its owner still drives it.
        assert ok(a.get("/get_status", params={"sandbox_id": sid}))["state"] == "running"  # type: ignore[index]
        assert run(a, sid, "echo still mine")["output"].strip() == "still mine"
        assert sid in [item["sandbox_id"] for item in ok(a.get("/sandboxes"))["items"]]  # type: ignore[index]
        ok(a.post("/stop", json={"sandbox_id": sid}))


def test_headers_of_the_creator_are_part_of_the_owner(admin: Admin) -> None:
    alice = {**A, "X-User-Id": "alice", "X-Namespace": "team"}
    with admin.client(headers=alice) as http, admin.client(headers=A) as bare:
        sid = _started(http)
        assert run(http, sid, "echo alice")["output"].strip() == "alice"
        assert "not found" in failed(bare.get("/get_status", params={"sandbox_id": sid}))["message"]
        ok(http.post("/stop", json={"sandbox_id": sid}))


def test_an_admin_key_sees_and_drives_every_sandbox(admin: Admin) -> None:
    with admin.client(headers=A) as a, admin.client(headers=ROOT) as root:
        sid = _started(a)
        assert sid in [item["sandbox_id"] for item in ok(root.get("/sandboxes"))["items"]]  # type: ignore[index]
        assert run(root, sid, "echo admin")["output"].strip() == "admin"
        ok(root.post("/stop", json={"sandbox_id": sid}))
        assert ok(a.get("/get_status", params={"sandbox_id": sid, "include_all_states": "true"}))[
            "state"
        ] == (  # type: ignore[index]
            "stopped"
        )
        ok(root.post("/delete", json={"sandbox_id": sid}))


def test_gem_env_of_another_key_is_404(admin: Admin) -> None:
    with admin.raw(headers=A) as a, admin.raw(headers=B) as b:
        made = a.post(f"{GEM}/make", json={"env_id": "game:Sokoban-v0-easy"})
        assert made.status_code == 200, made.text
        env = made.json()["sandbox_id"]
        for op, body in (
            ("reset", {"sandbox_id": env, "seed": 1}),
            ("step", {"sandbox_id": env, "action": "up"}),
            ("list", {"sandbox_id": env}),
            ("close", {"sandbox_id": env}),
        ):
            theirs = b.post(f"{GEM}/{op}", json=body)
            assert theirs.status_code == 404, (op, theirs.text)
            assert "not found" in theirs.json()["detail"], (op, theirs.text)
        assert a.post(f"{GEM}/reset", json={"sandbox_id": env, "seed": 1}).status_code == 200
        assert a.post(f"{GEM}/close", json={"sandbox_id": env}).status_code == 200


def test_pooled_gem_envs_of_two_keys_never_share_a_sandbox(admin: Admin) -> None:
    with admin.raw(headers=A) as a, admin.raw(headers=B) as b:
        envs = []
        for http in (a, b):
            made = http.post(f"{GEM}/make", json={"env_id": "game:Sokoban-v0-easy", "mode": "pooled"})
            assert made.status_code == 200, made.text
            envs.append(made.json()["sandbox_id"])
        pools = [env.rpartition("/")[0] for env in envs]
        assert pools[0] != pools[1]
        with admin.client(headers=ROOT) as root:
            for pool in pools:
                ok(root.post("/stop", json={"sandbox_id": pool}))


def test_port_forward_to_another_keys_sandbox_is_refused_as_unknown(admin: Admin) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    def close_of(sid: str, key: dict[str, str]) -> tuple[int | None, str]:
        url = f"ws://127.0.0.1:{admin.port}/apis/envs/sandbox/v1/sandboxes/{sid}/portforward?port=9999"
        with connect(url, additional_headers=key, open_timeout=10) as ws:
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=10)
            return ws.close_code, (ws.close_reason or "").replace(sid, "ID")

    with admin.client(headers=A) as a:
        sid = start_sandbox(a)
        theirs = close_of(sid, B)
        assert theirs == close_of(uuid.uuid4().hex, B)
        assert theirs[0] == 1008 and "not found" in theirs[1]
        assert close_of(sid, A)[0] == 1011  # the owner reaches the sandbox (nothing listens on port 9999)
        ok(a.post("/stop", json={"sandbox_id": sid}))


def test_a_read_node_keeps_tenants_apart(tmp_path_factory: pytest.TempPathFactory) -> None:
    state = tmp_path_factory.mktemp("cluster")
    keys = {"api_keys": "key-a,key-b"}
    with (
        running_admin(state, role="write", **keys) as write,
        running_admin(state, role="read", write_url=write.url, **keys) as read,
        read.client(headers=A) as a,
        read.client(headers=B) as b,
    ):
        sid = _started(a)  # relayed to the write node; the read node caches the route on A's first call
        assert run(a, sid, "echo via read")["output"].strip() == "via read"
        assert _as_stranger(b, sid) == _as_stranger(b, uuid.uuid4().hex)
        assert sid not in [item["sandbox_id"] for item in ok(b.get("/sandboxes"))["items"]]  # type: ignore[index]
        assert run(a, sid, "echo still")["output"].strip() == "still"


def test_without_api_keys_the_user_and_namespace_headers_still_separate(tmp_path: Path) -> None:
    with (
        running_admin(tmp_path / "open") as admin,
        admin.client(headers={"X-User-Id": "alice"}) as alice,
        admin.client(headers={"X-User-Id": "bob"}) as bob,
        admin.client() as nobody,
    ):
        sid = _started(alice)
        unknown = _as_stranger(bob, uuid.uuid4().hex)
        assert _as_stranger(bob, sid) == unknown
        assert _as_stranger(nobody, sid) == unknown
        assert run(alice, sid, "echo alice")["output"].strip() == "alice"
