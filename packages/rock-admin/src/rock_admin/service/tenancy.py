"""Who is calling, and which sandboxes they may see.

A sandbox belongs to the caller that started it: the API key (stored as its SHA-256, never the key) and
upstream's `X-User-Id` / `X-Namespace` headers. Any other caller is told the sandbox does not exist (the same
answer as for an id nobody uses, so ids cannot be probed); an admin key sees every sandbox. The HTTP middleware
binds the caller for the request; work the admin does on its own (idle scan, adoption) has no caller and
sees everything.
"""

from __future__ import annotations

import contextvars
import hashlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Caller:
    #: SHA-256 (hex) of the API key; "" when the admin has no keys.
    key: str
    user_id: str = ""
    namespace: str = ""
    #: An admin key: every sandbox is visible.
    admin: bool = False

    def owner(self) -> dict[str, str]:
        """What a sandbox this caller starts records as its owner."""
        return {"key": self.key, "user_id": self.user_id, "namespace": self.namespace}

    def owns(self, record: dict[str, Any]) -> bool:
        return self.admin or record.get("owner") == self.owner()


_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("rock_admin_caller", default=None)


def key_hash(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()


def bind(caller: Caller) -> contextvars.Token[Caller | None]:
    return _caller.set(caller)


def unbind(token: contextvars.Token[Caller | None]) -> None:
    _caller.reset(token)


def current() -> Caller | None:
    """The caller of the request being served; None for the admin's own work."""
    return _caller.get()


def visible(record: dict[str, Any]) -> bool:
    caller = _caller.get()
    return caller is None or caller.owns(record)


def owner_of_new() -> dict[str, str] | None:
    caller = _caller.get()
    return caller.owner() if caller is not None else None
