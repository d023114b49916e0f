"""Real admin processes over HTTP, real sandboxes (no mocked runtime). Every process is stopped by its PID."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from rock_admin.testing import Admin, ok, running_admin, start_sandbox


@pytest.fixture(scope="session")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    with running_admin(tmp_path_factory.mktemp("admin")) as a:
        yield a


@pytest.fixture
def http(admin: Admin) -> Iterator[httpx.Client]:
    with admin.client() as c:
        yield c


@pytest.fixture
def two(http: httpx.Client) -> Iterator[tuple[str, str]]:
    """Two running sandboxes side by side, each with a bash session `s`; stopped and deleted afterwards."""
    a, b = start_sandbox(http), start_sandbox(http)
    for sid in (a, b):
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
    yield a, b
    for sid in (a, b):
        http.post("/stop", json={"sandbox_id": sid})
        http.post("/delete", json={"sandbox_id": sid})
