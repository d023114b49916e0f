"""OpenAI wire shapes the service speaks to agents: error bodies, and a chat completion as SSE chunks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> bytes:
    """OpenAI's error object, which the official clients turn into `APIStatusError` subclasses by status."""
    return json.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}}).encode()


class ApiError(Exception):
    """A reply to the agent in OpenAI's error shape."""

    def __init__(
        self, status: int, message: str, type_: str, code: str | None = None, param: str | None = None
    ):
        super().__init__(message)
        self.status, self.body = status, error_body(message, type_, code, param)


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


def completion_chunks(completion: dict[str, Any]) -> Iterator[bytes]:
    """A `chat.completion` object as the `chat.completion.chunk` events a streaming client reads: one delta
    per choice with its content and tool calls, then the finish reasons (and usage), then `[DONE]`."""
    base = {
        "id": completion.get("id") or f"chatcmpl-{time.time_ns()}",
        "object": "chat.completion.chunk",
        "created": completion.get("created") or int(time.time()),
        "model": completion.get("model") or "",
    }
    choices = completion.get("choices") or []
    for i, choice in enumerate(choices):
        message = choice.get("message") or {}
        delta: dict[str, Any] = {
            "role": message.get("role") or "assistant",
            "content": message.get("content"),
        }
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": n, **call} for n, call in enumerate(message["tool_calls"])]
        yield _sse(
            {**base, "choices": [{"index": choice.get("index", i), "delta": delta, "finish_reason": None}]}
        )
    finish = [
        {"index": c.get("index", i), "delta": {}, "finish_reason": c.get("finish_reason") or "stop"}
        for i, c in enumerate(choices)
    ]
    last: dict[str, Any] = {**base, "choices": finish}
    if completion.get("usage"):
        last["usage"] = completion["usage"]
    yield _sse(last)
    yield b"data: [DONE]\n\n"
