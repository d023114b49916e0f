"""Proxy mode: each chat request goes to a real upstream (`proxy_rules[model]`, `proxy_rules["default"]`, else
`proxy_base_url`), retried on the retryable statuses with doubling backoff as upstream does, and recorded: one
JSON line per turn in `recording_file`, and the request/response markers in the service log."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from rock.actions import ModelServiceConfig
from rock.retry import backoff_delay
from rocklet.model_service.asgi import Send, reply
from rocklet.model_service.openai_wire import ApiError

#: (request body, response body or collected SSE text, status) for the log and the recording.
Recorder = Callable[[dict[str, Any], Any, int], None]


class Proxy:
    def __init__(self, config: ModelServiceConfig, record: Recorder) -> None:
        self.config = config
        self.record = record
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(config.proxy_timeout, connect=10.0))

    def target(self, model: Any) -> str:
        rules = self.config.proxy_rules
        base = rules.get(model) if isinstance(model, str) else None
        base = base or rules.get("default") or self.config.proxy_base_url
        if not base:
            raise ApiError(
                404, f"no proxy rule for model {model!r}", "invalid_request_error", "model_not_found"
            )
        return base.rstrip("/") + "/chat/completions"

    async def forward(self, body: dict[str, Any], authorization: str, send: Send) -> None:
        url = self.target(body.get("model"))
        headers = {"content-type": "application/json"}
        if authorization:
            headers["authorization"] = authorization
        payload = json.dumps(body).encode()
        c = self.config
        for attempt in range(c.proxy_attempts):
            try:
                request = self.client.build_request("POST", url, content=payload, headers=headers)
                response = await self.client.send(request, stream=True)
            except httpx.HTTPError as exc:
                if attempt + 1 < c.proxy_attempts:
                    await asyncio.sleep(
                        backoff_delay(attempt, c.proxy_retry_backoff, cap=math.inf, jitter=False)
                    )
                    continue
                raise ApiError(
                    502, f"the upstream model at {url} did not answer: {exc}", "api_error"
                ) from None
            if response.status_code in c.retryable_status_codes and attempt + 1 < c.proxy_attempts:
                await response.aclose()
                await asyncio.sleep(backoff_delay(attempt, c.proxy_retry_backoff, cap=math.inf, jitter=False))
                continue
            await self._relay(body, response, send)
            return

    async def _relay(self, body: dict[str, Any], response: httpx.Response, send: Send) -> None:
        """The upstream's reply as it comes (SSE chunk by chunk), then recorded whole."""
        kind = response.headers.get("content-type", "application/json").encode("latin-1")
        try:
            if not kind.startswith(b"text/event-stream"):
                raw = await response.aread()
                await reply(send, response.status_code, raw, kind)
                self.record(body, _decoded(raw), response.status_code)
                return
            headers = [(b"content-type", kind), (b"cache-control", b"no-cache")]
            await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
            seen = bytearray()
            async for chunk in response.aiter_raw():
                seen += chunk
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            self.record(body, seen.decode("utf-8", "replace"), response.status_code)
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def append_recording(path: Path, request: dict[str, Any], response: Any, status: int) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(
            json.dumps({"request": request, "response": response, "status": status}, ensure_ascii=False)
            + "\n"
        )
