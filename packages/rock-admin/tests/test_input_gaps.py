"""Input gaps (issue 11 §1): each bad input is a Failed envelope / HTTP 4xx naming the field — never an
internal error, a traceback or a host path."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from rock_admin.testing import Admin, failed, ok, running_admin

DEEP = "[" * 100_000 + "]" * 100_000
GEM = "/apis/v1/envs/gem"


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    with running_admin(tmp_path_factory.mktemp("gaps")) as a:
        yield a


def _clean(body: dict, admin: Admin) -> None:
    text = str(body)
    assert "Traceback" not in text and "internal error" not in text, body
    assert str(admin.state_dir) not in text and "/work/" not in text, body  # no host path
    assert body["result"]["code"] == 4000, body


@pytest.mark.parametrize("path", ["/start", "/execute", "/run_in_session", "/write_file", "/stop"])
def test_deeply_nested_json_is_a_bad_body(admin: Admin, path: str) -> None:
    with admin.client() as http:
        body = failed(http.post(path, content=f'{{"sandbox_id": "x", "command": {DEEP}}}'))
    _clean(body, admin)
    assert "body" in body["error"] and "deep" in body["error"], body


@pytest.mark.parametrize("op", ["make", "step", "reset"])
def test_deeply_nested_json_is_a_gem_400(admin: Admin, op: str) -> None:
    reply = httpx.post(
        f"{admin.url}{GEM}/{op}", content=f'{{"sandbox_id": "x", "env_id": {DEEP}}}', timeout=60
    )
    assert reply.status_code in (400, 422), reply.text
    assert "RecursionError" not in reply.text and "deep" in reply.text, reply.text


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"sandbox_id": "abc\n"}, "sandbox_id"),
        ({"cpus": 1e-9}, "cpus"),
        ({"limit_cpus": 1e-9}, "limit_cpus"),
        ({"image": "a" * 5000}, "image"),
        ({"image": "python 3.11"}, "image"),
        ({"env": {"A": "x\u0000y"}}, "env"),
        ({"env": {"A=B": "x"}}, "env"),
        ({"env": {"": "x"}}, "env"),
    ],
)
def test_bad_start_fields_are_named(admin: Admin, fields: dict, named: str) -> None:
    with admin.client() as http:
        body = failed(
            http.post("/start", json={"image": "python:3.11", "memory": "512m", "cpus": 1, **fields})
        )
        _clean(body, admin)
        assert named in body["message"] or named in str(body["error"]), body
        assert ok(http.get("/sandboxes"))["total"] == 0  # type: ignore[index]  # nothing was started
