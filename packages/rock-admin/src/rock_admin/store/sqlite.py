"""SQLite store: WAL journal, one row per sandbox, so records survive an admin restart (and `kill -9`)."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from typing import Any

from rock_admin.store.base import SandboxStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sandboxes (
    sandbox_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    record TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sandboxes_state ON sandboxes(state);
CREATE TABLE IF NOT EXISTS activity (sandbox_id TEXT PRIMARY KEY, seen REAL NOT NULL);
"""


class SqliteStore(SandboxStore):
    def __init__(self, path: str) -> None:
        _private(path)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a crash of the process loses nothing; a power loss may lose the last commits.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def put(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO sandboxes (sandbox_id, state, record, updated) VALUES (?, ?, ?, ?)",
                (record["sandbox_id"], record["state"], json.dumps(record), time.time()),
            )

    def insert_new(self, record: dict[str, Any]) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT state FROM sandboxes WHERE sandbox_id = ?", (record["sandbox_id"],)
            ).fetchone()
            if row is not None and row[0] != "deleted":
                return False
            self._db.execute(
                "INSERT OR REPLACE INTO sandboxes (sandbox_id, state, record, updated) VALUES (?, ?, ?, ?)",
                (record["sandbox_id"], record["state"], json.dumps(record), time.time()),
            )
            return True

    def get(self, sandbox_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT record FROM sandboxes WHERE sandbox_id = ?", (sandbox_id,)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def list(self, states: list[str] | None = None) -> list[dict[str, Any]]:
        with self._lock:
            if states:
                marks = ",".join("?" * len(states))
                rows = self._db.execute(
                    f"SELECT record FROM sandboxes WHERE state IN ({marks}) ORDER BY updated", states
                ).fetchall()
            else:
                rows = self._db.execute("SELECT record FROM sandboxes ORDER BY updated").fetchall()
        return [json.loads(r[0]) for r in rows]

    def touch(self, times: dict[str, float]) -> None:
        with self._lock:
            self._db.execute("BEGIN")  # one commit for the batch
            try:
                self._db.executemany(
                    "INSERT INTO activity (sandbox_id, seen) VALUES (?, ?) "
                    "ON CONFLICT(sandbox_id) DO UPDATE SET seen = max(seen, excluded.seen)",
                    list(times.items()),
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def activity(self, sandbox_ids: list[str]) -> dict[str, float]:
        if not sandbox_ids:
            return {}
        marks = ",".join("?" * len(sandbox_ids))
        with self._lock:
            rows = self._db.execute(
                f"SELECT sandbox_id, seen FROM activity WHERE sandbox_id IN ({marks})", sandbox_ids
            ).fetchall()
        return {sid: seen for sid, seen in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _private(path: str) -> None:
    """The DB's dir 0700 and the DB 0600 before SQLite opens it (its -wal and -shm take the DB's mode); files
    an older admin made 0644 are narrowed."""
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, mode=0o700, exist_ok=True)
    os.chmod(parent, 0o700)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600))
    for name in (path, f"{path}-wal", f"{path}-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(name, 0o600)
