"""What ends a wait on a bash session's output: the prompt marker (which carries the exit code), one of the
command's `expect` patterns, or the shell's exit; and which of them came first in the output."""

from __future__ import annotations

import asyncio
import re

from rocklet.sessions.output import Captured


class Result:
    """What ended a wait: `kind` "prompt" (with exit code), "expect" (the pattern's text) or "eof"."""

    __slots__ = ("captured", "exit_code", "expect_string", "kind")

    def __init__(self, kind: str, captured: Captured, exit_code: int | None, expect_string: str = "") -> None:
        self.kind, self.captured, self.exit_code, self.expect_string = (
            kind,
            captured,
            exit_code,
            expect_string,
        )


class Waiter:
    """One pending wait: its future and the compiled `expect` patterns it also ends on."""

    __slots__ = ("expect", "future")

    def __init__(self, future: asyncio.Future[Result], expect: list[tuple[str, re.Pattern[bytes]]]) -> None:
        self.future, self.expect = future, expect


def compile_expect(patterns: list[str]) -> list[tuple[str, re.Pattern[bytes]]]:
    """`expect` strings are regular expressions (as pexpect's); one that does not compile is a literal."""
    compiled = []
    for pattern in patterns:
        raw = pattern.encode("utf-8", "surrogateescape")
        try:
            compiled.append((pattern, re.compile(raw)))
        except re.error:
            compiled.append((pattern, re.compile(re.escape(raw))))
    return compiled


def earliest_expect(
    data: bytearray, start: int, expect: list[tuple[str, re.Pattern[bytes]]]
) -> tuple[str, re.Match[bytes]] | None:
    """The pattern that matches first in `data[start:]` (ties: the first listed), with its match."""
    hit: tuple[str, re.Match[bytes]] | None = None
    for text, pattern in expect:
        match = pattern.search(data, start)
        if match and (hit is None or match.start() < hit[1].start()):
            hit = (text, match)
    return hit
