"""A real rocklet process per test module (TCP, with auth) and one on a Unix socket; stopped by PID."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from rocklet.testing import RunningRocklet, running_rocklet

TOKEN = "test-token"


@pytest.fixture(scope="module")
def rocklet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRocklet]:
    workdir = tmp_path_factory.mktemp("rocklet")
    with running_rocklet(
        workdir, token=TOKEN, extra_args=["--max-output-bytes", "1048576"], env={"ROCKLET_TEST_ONLY": "set"}
    ) as info:
        yield info


@pytest.fixture(scope="module")
def uds_rocklet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRocklet]:
    workdir = tmp_path_factory.mktemp("rocklet-uds")
    with running_rocklet(workdir, token=TOKEN, uds=True) as info:
        yield info


@pytest.fixture(scope="module")
def http(rocklet: RunningRocklet) -> Iterator[httpx.Client]:
    with rocklet.client(timeout=60.0) as client:
        yield client


@pytest.fixture
def session(http: httpx.Client) -> Iterator[str]:
    """A fresh bash session, closed afterwards."""
    name = f"s-{uuid.uuid4().hex[:8]}"
    r = http.post("/create_session", json={"session": name})
    assert r.status_code == 200, r.text
    yield name
    http.post("/close_session", json={"session": name})
