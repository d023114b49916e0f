"""Pulling an answer out of model text: `\\boxed{...}` (GEM) and `<answer>...</answer>` (ROLL)."""

from __future__ import annotations

import re

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`), braces balanced; None when there is none."""
    start = text.rfind("\\boxed")
    if start < 0:
        start = text.rfind("\\fbox")
        if start < 0:
            return None
    brace = text.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for i in range(brace, len(text)):
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : i]
    return None


def last_answer_tag(text: str) -> str | None:
    """Stripped content of the last `<answer>...</answer>`; None when there is none."""
    matches = _ANSWER_TAG.findall(text)
    return matches[-1].strip() if matches else None


def match_action(text: str, pattern: re.Pattern[str]) -> str | None:
    """ROLL-style parsing: the last group of the first `pattern` match (so think/answer patterns work)."""
    m = pattern.search(text)
    if m is None:
        return None
    groups = m.groups()
    content = groups[-1] if groups else m.group(0)
    return None if content is None else content.strip()  # None: the last group took no part in the match
