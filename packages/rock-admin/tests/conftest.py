"""Real admin processes over HTTP, real sandboxes (no mocked runtime). Every process is stopped by its PID."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from rock_admin.testing import Admin, running_admin


@pytest.fixture(scope="session")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    with running_admin(tmp_path_factory.mktemp("admin")) as a:
        yield a


@pytest.fixture
def http(admin: Admin) -> Iterator[httpx.Client]:
    with admin.client() as c:
        yield c
