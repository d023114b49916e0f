"""Rocklet tokens, kept out of the store: each is HMAC-SHA256(admin secret, sandbox id + a random nonce), so a
record holds only the nonce and reading the store (or a backup of it) drives no rocklet.

The secret is a 0600 file (default `<state_dir>/rocklet-token.key`, made on first start); every node of a
cluster reads the same file (`token_key_file`). A record written by an older admin still carries its token in
clear, which keeps working until that sandbox is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from typing import Any

KEY_BYTES = 32


def read_or_create_key(path: str) -> bytes:
    """The secret in `path`; a new one (0600, written atomically: racing nodes agree on one) when absent."""
    with contextlib.suppress(FileNotFoundError):
        return _read(path)
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, secrets.token_bytes(KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails when another node made it first: theirs wins
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return _read(path)


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fchmod(fd, 0o600)  # a key file from before this check was made 0644
        key = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(key) != KEY_BYTES:
        raise ValueError(f"token_key_file {path}: expected {KEY_BYTES} bytes, found {len(key)}")
    return key


def new_nonce() -> str:
    return secrets.token_hex(16)


class TokenKey:
    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_file(cls, path: str) -> TokenKey:
        return cls(read_or_create_key(path))

    def token(self, record: dict[str, Any]) -> str:
        """The token of the sandbox `record` describes (what its rocklet was started with)."""
        legacy = record.get("token")
        if legacy:
            return legacy
        nonce = record.get("token_nonce") or ""
        message = f"{record['sandbox_id']}:{nonce}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]
