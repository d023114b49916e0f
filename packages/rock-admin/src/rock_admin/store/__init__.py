"""Sandbox records behind one interface; SQLite (WAL) is the embedded default."""

from rock_admin.store.base import SandboxStore
from rock_admin.store.sqlite import SqliteStore

__all__ = ["SandboxStore", "SqliteStore", "open_store"]


def open_store(kind: str, state_dir: str) -> SandboxStore:
    if kind == "sqlite":
        return SqliteStore(f"{state_dir}/rock-admin.db")
    if kind == "redis":
        raise NotImplementedError("store 'redis' is not implemented yet (reserved for the scale-out issue)")
    raise ValueError(f"unknown store {kind!r} (available: sqlite)")
