"""The endpoint agents call, at `http://127.0.0.1:<port>/v1` in the sandbox: a plain ASGI app (four routes, no
framework on the hot path) answering in OpenAI's shapes, errors included.

    GET  /health                  {"status": "healthy"}
    GET  /v1/models               the served model names
    POST /v1/chat/completions     parked for the trainer (local) or forwarded (proxy); `stream: true` is SSE
    POST /v1/agent/watch {pid}    the session ends when that process exits (upstream's route)
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from rock.actions import WatchAgentRequest
from rocklet.model_service.asgi import Receive, Scope, Send, header, read_body, reply, stream
from rocklet.model_service.openai_wire import ApiError, completion_chunks
from rocklet.model_service.turns import QueueFull, SessionEnded

if TYPE_CHECKING:
    from rocklet.model_service.service import ModelService


class AgentApi:
    def __init__(self, service: ModelService) -> None:
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        route = (scope["method"], scope["path"].rstrip("/") or "/")
        try:
            if route == ("GET", "/health"):
                await reply(send, 200, b'{"status":"healthy"}')
            elif route == ("GET", "/v1/models"):
                await reply(send, 200, self._models())
            elif route == ("POST", "/v1/chat/completions"):
                await self._chat(scope, receive, send)
            elif route == ("POST", "/v1/agent/watch"):
                await self._watch(receive, send)
            else:
                raise ApiError(404, f"no route {route[0]} {route[1]}", "invalid_request_error", "unknown_url")
        except ApiError as exc:
            await reply(send, exc.status, exc.body)

    def _models(self) -> bytes:
        data = [{"id": m, "object": "model", "owned_by": "rock"} for m in self.service.config.models]
        return json.dumps({"object": "list", "data": data}).encode()

    async def _json(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        raw = await read_body(receive, self.service.config.max_body_bytes)
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}", "invalid_request_error") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object", "invalid_request_error")
        return body

    def _check_key(self, scope: Scope) -> None:
        key = self.service.config.api_key
        if not key:
            return
        sent = header(scope, b"authorization").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), key.encode()):
            raise ApiError(401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key")

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._check_key(scope)
        body = await self._json(scope, receive)
        if not isinstance(body.get("messages"), list):
            raise ApiError(
                400, "messages: a list of messages is required", "invalid_request_error", param="messages"
            )
        model = body.get("model")
        config = self.service.config
        if config.type == "local" and model not in config.models:
            raise ApiError(
                404,
                f"The model {model!r} does not exist; this service serves {', '.join(config.models)}",
                "invalid_request_error",
                "model_not_found",
                "model",
            )
        if config.type == "proxy":
            await self.service.proxy.forward(body, header(scope, b"authorization"), send)
            return
        try:
            turn = self.service.park(body)
        except QueueFull as exc:
            raise ApiError(429, str(exc), "rate_limit_error", "rate_limit_exceeded") from None
        except SessionEnded as exc:
            raise ApiError(500, str(exc), "server_error", "session_ended") from None
        try:
            answer = await _answer_or_disconnect(turn.answer, receive, config.request_timeout)
        except TimeoutError:
            raise ApiError(
                504,
                f"no answer from the trainer for request {turn.index} in {config.request_timeout:g} s "
                "(model service request_timeout)",
                "timeout_error",
                "timeout",
            ) from None
        except SessionEnded as exc:
            raise ApiError(500, str(exc), "server_error", "session_ended") from None
        finally:
            self.service.forget(turn)
        if answer is None:  # the agent hung up
            return
        if body.get("stream"):
            await stream(send, _iter(completion_chunks(answer)))
        else:
            await reply(send, 200, json.dumps(answer, ensure_ascii=False).encode())

    async def _watch(self, receive: Receive, send: Send) -> None:
        raw = await read_body(receive, 4096)
        try:
            req = WatchAgentRequest.model_validate_json(raw)
        except ValueError as exc:
            raise ApiError(400, f"pid: {exc}", "invalid_request_error", param="pid") from None
        await self.service.watch(req)
        await reply(send, 200, b'{"status":"watching"}')


async def _answer_or_disconnect(
    answer: asyncio.Future[dict[str, Any]], receive: Receive, timeout: float
) -> dict[str, Any] | None:
    """The trainer's answer; None when the agent's connection closes first; TimeoutError after `timeout` s."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        done, _ = await asyncio.wait({answer, watcher}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if answer in done:
        return answer.result()
    if watcher in done:
        return None
    raise TimeoutError


async def _iter(chunks: Any) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
