"""Shared fixtures of the end-to-end suite: real admins (`rock_admin.testing.running_admin`, stopped by PID).
Helpers live in `integration_helpers.py` next to this file."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# the suite's helper module (tests import it by name; pytest runs with --import-mode=importlib)
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _running_admin():
    if not os.environ.get("CI"):
        pytest.importorskip("rock_admin", reason="the integration suite needs rock-admin")
    from rock_admin.testing import running_admin

    return running_admin


@pytest.fixture(scope="module")
def admin(tmp_path_factory) -> Iterator[object]:
    """One admin per test module (starting one costs about a second; sandboxes are per test anyway)."""
    with _running_admin()(tmp_path_factory.mktemp("admin")) as running:
        yield running


@pytest.fixture
def own_admin(tmp_path) -> Iterator[object]:
    """An admin of the test's own, for tests that kill or restart it."""
    with _running_admin()(tmp_path / "admin") as running:
        yield running


@pytest.fixture(scope="session", autouse=True)
def _roll_cache(tmp_path_factory) -> Iterator[None]:
    """Built-in models are built once per run into a cache of the run (never the user's)."""
    before = os.environ.get("ROLL_CACHE_DIR")
    os.environ["ROLL_CACHE_DIR"] = before or str(tmp_path_factory.mktemp("roll-cache"))
    yield
    if before is None:
        os.environ.pop("ROLL_CACHE_DIR", None)
