"""Sandbox records behind one interface: SQLite (WAL; one host, shared by its roles) or Redis (several hosts)."""

from rock_admin.store.base import SandboxStore
from rock_admin.store.sqlite import SqliteStore

__all__ = ["SandboxStore", "SqliteStore", "open_store"]


def open_store(kind: str, state_dir: str, redis_url: str = "", redis_prefix: str = "rock") -> SandboxStore:
    if kind == "sqlite":
        return SqliteStore(f"{state_dir}/rock-admin.db")
    if kind == "redis":
        from rock_admin.store.redis import RedisStore

        return RedisStore(redis_url, redis_prefix)
    raise ValueError(f"unknown store {kind!r} (available: sqlite, redis)")
