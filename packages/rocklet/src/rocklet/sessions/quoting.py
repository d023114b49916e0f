"""Quoting a command for the shell's input line."""

from __future__ import annotations

_SAFE = {c: chr(c) for c in range(0x20, 0x7F)}
_SAFE[ord("'")] = "\\'"
_SAFE[ord("\\")] = "\\\\"


def ansi_c_quote(text: str) -> str:
    """`$'...'` quoting of `text` using printable ASCII only (everything else as `\\xHH` bytes of its UTF-8),
    so the typed line passes readline and the tty unchanged whatever the command contains."""
    data = text.encode("utf-8", "surrogateescape")
    return "$'" + "".join(_SAFE.get(b) or f"\\x{b:02x}" for b in data) + "'"


def shell_single_quote(text: str) -> str:
    """POSIX single quoting."""
    return "'" + text.replace("'", "'\"'\"'") + "'"
