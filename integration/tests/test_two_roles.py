"""Two-role deployment: a write node (lifecycle) and a read node (data plane) sharing one store, with the
trainer pointed at the read node's URL only: lifecycle calls reach the write node through it, while
commands go from the read node straight to the sandboxes."""

from __future__ import annotations

import os
import re

import httpx
import pytest
from integration_helpers import SANDBOX_CONFIG, TAG, config, read_metrics

from roll.agentic.pipeline import AgenticPipeline


def _requests(url: str, op: str) -> float:
    """rock_admin_requests_total for one operation (all codes) from a node's /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    pattern = re.compile(r"^rock_admin_requests_total\{([^}]*)\}\s+([0-9.e+]+)$", re.M)
    return sum(float(v) for labels, v in pattern.findall(text) if f'op="{op}"' in labels)


@pytest.fixture
def two_roles(tmp_path):
    if not os.environ.get("CI"):
        pytest.importorskip("rock_admin", reason="the integration suite needs rock-admin")
    from rock_admin.testing import running_admin

    state = tmp_path / "state"  # one SQLite store (WAL) shared by both roles on this host
    with (
        running_admin(state, role="write") as write,
        running_admin(state, role="read", write_url=write.url) as read,
    ):
        yield write, read


def test_trainer_on_one_url_of_a_write_plus_read_deployment(two_roles, tmp_path):
    write, read = two_roles
    cfg = config(SANDBOX_CONFIG, read.url, tmp_path, "max_steps=1")
    pipe = AgenticPipeline(cfg, stdout=False)
    try:
        history = pipe.run()
    finally:
        pipe.close()
    assert len(history) == 1
    row = read_metrics(cfg)[0]
    assert row[f"env/{TAG}/terminated"] == 1.0
    assert row["scheduler/env_failures"] == 0.0
    # the read node served the game's commands; starting the sandboxes was the write node's job
    assert _requests(read.url, "sandbox.run_in_session") >= cfg.rollout_batch_size
    assert _requests(write.url, "sandbox.start") >= 1
    assert _requests(write.url, "sandbox.run_in_session") == 0
