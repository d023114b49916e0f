"""The Redis store against a real `redis-server` (started per module on a free port, stopped by PID): the store
interface's semantics, a write and a read node sharing nothing but Redis, and an admin that reconnects after a
Redis restart."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rock_admin.store.redis import RedisStore
from rock_admin.testing import Redis, failed, ok, running_admin, running_redis, start_sandbox

if shutil.which("redis-server") is None and not os.environ.get("CI"):
    pytest.skip(
        "redis-server is not installed (CI installs it from scripts/apt-packages.txt)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


def record(sid: str, state: str, **extra: object) -> dict[str, object]:
    return {"sandbox_id": sid, "state": state, "create_time": time.time(), **extra}


def test_store_semantics(redis: Redis) -> None:
    store = RedisStore(redis.url, prefix=f"t{uuid.uuid4().hex[:8]}")
    try:
        assert store.insert_new(record("a", "pending", image="x"))
        assert not store.insert_new(record("a", "pending"))  # the id is taken
        assert store.get("a")["image"] == "x"  # type: ignore[index]
        store.put(record("a", "running"))
        store.put(record("b", "stopped"))
        assert [r["sandbox_id"] for r in store.list(["running"])] == ["a"]
        assert not store.list(["pending"])  # moved out of the old state's index
        assert {r["sandbox_id"] for r in store.list()} == {"a", "b"}
        assert {r["sandbox_id"] for r in store.list(["running", "stopped"])} == {"a", "b"}
        store.put(record("a", "deleted"))
        assert store.insert_new(record("a", "pending"))  # a deleted id may be reused
        assert store.get("missing") is None
        store.touch({"a": 100.0, "b": 50.0})
        store.touch({"a": 90.0})  # an older report never wins
        assert store.activity(["a", "b", "c"]) == {"a": 100.0, "b": 50.0}
    finally:
        store.close()


def test_write_and_read_node_share_only_redis_and_survive_its_restart(redis: Redis, tmp_path: Path) -> None:
    settings = {"store": "redis", "redis_url": redis.url, "redis_prefix": f"c{uuid.uuid4().hex[:8]}"}
    settings["token_key_file"] = str(tmp_path / "rocklet-token.key")  # the one secret every node shares
    with (
        running_admin(tmp_path / "write", role="write", **settings) as write,
        # Its own state dir: every record it sees comes from Redis.
        running_admin(tmp_path / "read", role="read", write_url=write.url, **settings) as read,
        read.client() as http,
    ):
        sid = start_sandbox(http)
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        body = {"sandbox_id": sid, "session": "s", "command": "hostname", "check": "silent"}
        assert ok(http.post("/run_in_session", json=body))["output"].strip() == sid  # type: ignore[index]

        redis.restart()

        assert ok(http.post("/run_in_session", json=body))["output"].strip() == sid  # type: ignore[index]
        second = start_sandbox(http)  # the write node writes to the restarted Redis
        status = ok(http.get("/get_status", params={"sandbox_id": second}))  # the read node reads it
        assert status["state"] == "running"  # type: ignore[index]
        ok(http.post("/stop", json={"sandbox_id": sid}))
        assert "is stopped" in failed(http.get("/get_status", params={"sandbox_id": sid}))["message"]
        refused = failed(http.post("/run_in_session", json=body))
        assert "state: stopped" in refused["message"]


def test_unreachable_redis_is_a_clear_error(tmp_path: Path) -> None:
    from rocklet.testing import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    args = [sys.executable, "-m", "rock_admin", "serve", "--store", "redis", "--redis-url", url]
    done = subprocess.run([*args, "--state-dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and f"redis_url: cannot reach Redis at {url}" in done.stderr, done.stderr
