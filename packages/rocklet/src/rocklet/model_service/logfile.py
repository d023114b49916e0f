"""Upstream ROCK's model-service log: one line per request and per response, with its markers.

    LLM_REQUEST_START{json}LLM_REQUEST_END{"timestamp": ms, "index": i}
    LLM_RESPONSE_START{json}LLM_RESPONSE_END{"timestamp": ms, "index": i}
    SESSION_END

Upstream's trainer and in-sandbox client talk through this file only; ours writes it as a record of every turn
and still accepts answers through it (the file channel), beside the direct one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rock.actions import SESSION_END

REQUEST_START, REQUEST_END = "LLM_REQUEST_START", "LLM_REQUEST_END"
RESPONSE_START, RESPONSE_END = "LLM_RESPONSE_START", "LLM_RESPONSE_END"
LOG_NAME = "LLMService.log"


@dataclass(frozen=True)
class Line:
    kind: str  # "request" | "response" | "end"
    index: int = 0
    body: dict[str, Any] | None = None


def _marked(start: str, end: str, index: int, body: dict[str, Any]) -> str:
    meta = json.dumps({"timestamp": int(time.time() * 1000), "index": index})
    return f"{start}{json.dumps(body, ensure_ascii=False)}{end}{meta}\n"


def request_line(index: int, body: dict[str, Any]) -> str:
    return _marked(REQUEST_START, REQUEST_END, index, body)


def response_line(index: int, body: dict[str, Any]) -> str:
    return _marked(RESPONSE_START, RESPONSE_END, index, body)


def parse(line: str) -> Line | None:
    """One log line, or None for a line that is not one of ours (or is cut short: still being written)."""
    line = line.rstrip("\n")
    if line == SESSION_END:
        return Line("end")
    for kind, start, end in (
        ("request", REQUEST_START, REQUEST_END),
        ("response", RESPONSE_START, RESPONSE_END),
    ):
        if line.startswith(start) and end in line:
            body_text, _, meta_text = line[len(start) :].rpartition(end)
            try:
                body, meta = json.loads(body_text), json.loads(meta_text)
            except ValueError:
                return None
            if isinstance(body, dict) and isinstance(meta, dict) and isinstance(meta.get("index"), int):
                return Line(kind, meta["index"], body)
    return None


class LogReader:
    """Reads the lines appended to a log since the last call (whole lines only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def new_lines(self) -> list[Line]:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data, self._partial = self._partial + data, b""
        *complete, rest = data.split(b"\n")
        self._partial = rest
        return [p for raw in complete if (p := parse(raw.decode("utf-8", "replace"))) is not None]

    def skip_to_end(self) -> None:
        self._offset = self.path.stat().st_size if self.path.exists() else 0
        self._partial = b""
