"""Bounded output capture and cleaning of terminal output."""

from __future__ import annotations

import re
from collections.abc import Mapping

from rocklet.errors import ROCK_CLIENT_HEADER

#: Sent by our admin on `/run_in_session`: its sandbox API answers in ROCK's shape (ROCK's rocklet strips the
#: output, `hi`); SWE-ReX's clients get the output as it came (`hi\n`).
TRIM_OUTPUT_HEADER = "x-rock-trim-output"


def trims_output(headers: Mapping[str, str]) -> bool:
    """Whether the caller reads `run_in_session` output as ROCK's rocklet gives it: stripped."""
    # Upstream ROCK's RemoteSandboxRuntime (known by its `sandbox_id` header) reads ROCK's shape too.
    return TRIM_OUTPUT_HEADER in headers or ROCK_CLIENT_HEADER in headers


# ANSI CSI/ESC sequences (the regex SWE-ReX uses) and OSC strings (title updates and the like).
_ANSI = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1B[@-_][0-?]*[ -/]*[@-~]")


def clean_output(data: bytes) -> str:
    """Decode (invalid UTF-8 kept as `\\xNN`), strip ANSI escapes, turn `\\r\\n` into `\\n`."""
    text = data.decode("utf-8", "backslashreplace")
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    return text


class OutputBuffer:
    """Bytes read from a pty, at most `limit` kept: the first half, then a rolling last half.

    `data` always holds the most recent bytes, so markers at the end are found; what falls out of the middle
    is counted in `dropped`.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 4096)
        self.data = bytearray()
        self.head: bytes | None = None
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.data) + len(self.head or b"") + self.dropped

    def append(self, chunk: bytes) -> None:
        self.data += chunk
        half = self.limit // 2
        if self.head is None:
            if len(self.data) <= self.limit:
                return
            self.head = bytes(self.data[:half])
            del self.data[:half]
        # Trim the tail in batches so appends stay amortised O(1).
        if len(self.data) > self.limit:
            excess = len(self.data) - half
            del self.data[:excess]
            self.dropped += excess

    def take(self, end: int, resume: int) -> Captured:
        """Everything before `data[end]`; `data[resume:]` stays for the next reader."""
        tail, dropped = bytes(self.data[:end]), self.dropped
        if self.head is not None and len(self.head) + len(tail) > self.limit:  # the tail is trimmed lazily
            cut = len(self.head) + len(tail) - self.limit
            tail, dropped = tail[cut:], dropped + cut
        captured = Captured(self.head or b"", tail, dropped)
        del self.data[:resume]
        self.head = None
        self.dropped = 0
        return captured

    def take_all(self) -> Captured:
        return self.take(len(self.data), len(self.data))


class Captured:
    """Captured bytes: `head + [dropped bytes] + tail` (head is empty unless the limit was hit)."""

    __slots__ = ("dropped", "head", "tail")

    def __init__(self, head: bytes, tail: bytes, dropped: int) -> None:
        self.head, self.tail, self.dropped = head, tail, dropped

    def prepend(self, earlier: Captured) -> Captured:
        """`earlier` followed by this; when either overflowed, the earlier bytes count as dropped."""
        if not earlier:
            return self
        if earlier.head or earlier.dropped or self.head or self.dropped:
            return Captured(
                self.head, self.tail, self.dropped + len(earlier.head) + len(earlier.tail) + earlier.dropped
            )
        return Captured(b"", earlier.tail + self.tail, 0)

    def __bool__(self) -> bool:
        return bool(self.head or self.tail or self.dropped)

    def text(self, clean: bool = True) -> str:
        """The text (terminal-cleaned unless `clean=False`), with a note where bytes were dropped."""
        decode = clean_output if clean else _decode
        if not self.dropped and not self.head:
            return decode(self.tail)
        note = f"\n[... {self.dropped} bytes of output dropped by the rocklet's output limit ...]\n"
        return decode(self.head) + note + decode(self.tail)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace")
