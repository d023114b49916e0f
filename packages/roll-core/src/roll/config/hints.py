"""The "did you mean" hint that roll-core's unknown-key messages end with."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """`; did you mean 'x'?` for the closest of `choices` (difflib's default cutoff), else ''."""
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
