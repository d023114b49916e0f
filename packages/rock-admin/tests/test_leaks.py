"""Leaks on the host (issue 11 §1): the SQLite store was 0644 and held every rocklet token in clear. Now the
store, its -wal/-shm and the token secret are 0600 in a 0700 state dir, and no token is in the store's bytes."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import httpx
import pytest

from rock_admin.service.tokens import TokenKey
from rock_admin.testing import ok, running_admin, start_sandbox


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_private_no_token(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with running_admin(state) as admin, admin.client() as http:
        sids = [start_sandbox(http, sandbox_id=f"lk{i}") for i in range(2)]  # short socket paths
        ok(http.post("/create_session", json={"sandbox_id": sids[0], "session": "s"}))
        db = state / "rock-admin.db"
        with sqlite3.connect(db) as conn:
            records = [json.loads(r) for (r,) in conn.execute("SELECT record FROM sandboxes")]
        key = state / "rocklet-token.key"
        assert {p.name: _mode(p) for p in state.glob("rock-admin.db*")} == {
            "rock-admin.db": 0o600,
            "rock-admin.db-wal": 0o600,
            "rock-admin.db-shm": 0o600,
        }
        assert _mode(state) == 0o700 and _mode(key) == 0o600
        stored = b"".join(p.read_bytes() for p in state.glob("rock-admin.db*"))
        tokens = TokenKey(key.read_bytes())
        for record in records:
            assert "token" not in record
            token = tokens.token(record)
            assert token.encode() not in stored
            uds = record["handle"]["uds"]
            if len(uds) > 107:
                pytest.skip("socket path too long to reach directly from the test")
            # The derived token is the one the rocklet takes (and the store alone would not give it).
            with httpx.Client(transport=httpx.HTTPTransport(uds=uds), base_url="http://rocklet") as direct:
                assert direct.get("/is_alive", headers={"X-API-Key": token}).status_code == 200
                assert (
                    direct.get("/is_alive", headers={"X-API-Key": record["token_nonce"]}).status_code == 401
                )


def test_an_existing_store_is_narrowed_to_0600(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    db = state / "rock-admin.db"
    sqlite3.connect(db).close()
    os.chmod(db, 0o644)
    with running_admin(state) as admin, admin.client() as http:
        assert ok(http.get("/sandboxes"))["total"] == 0  # type: ignore[index]
        assert _mode(db) == 0o600 and _mode(state) == 0o700
