"""The trainer's side of a sandbox's model service (upstream's `rock.sdk.sandbox.model_service.base` names).

    ms = sandbox.agent.model_service
    await ms.start()                                   # the agent's OPENAI_BASE_URL is (await ms.status()).base_url
    turn = await ms.next_turn()                        # the agent's first request, parked in the sandbox
    while not turn.session_end:
        turn = await ms.answer_and_next(turn.index, chat_completion(policy(turn.request["messages"])))

Each turn is one round trip to the admin (answer N, receive N + 1). `anti_call_llm` keeps upstream's signature
and its string results; `channel="file"` takes upstream's road instead (a command in the sandbox that writes
the answer to the log file and polls it for the next request), kept to measure what the direct channel saves.
"""

from __future__ import annotations

import json
import shlex
import time
from typing import TYPE_CHECKING, Any, Literal

from rock.actions import SESSION_END, ModelServiceConfig, ModelServiceStatus, ModelTurn

if TYPE_CHECKING:
    from rock.sdk.sandbox.client import Sandbox


class ModelServiceTimeout(TimeoutError):
    """No request from the agent in `call_timeout` s."""


def chat_completion(
    content: str | None,
    model: str = "policy",
    finish_reason: str = "stop",
    tool_calls: list[dict[str, Any]] | None = None,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
) -> dict[str, Any]:
    """An OpenAI `chat.completion` object with one choice: what an agent's client expects back."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": f"chatcmpl-{time.time_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class ModelService:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.config: ModelServiceConfig | None = None

    async def start(self, config: ModelServiceConfig | None = None) -> ModelServiceStatus:
        """Serve in the sandbox (a running service restarts with the new config)."""
        self.config = config or ModelServiceConfig()
        return await self.sandbox._post("model_service/start", self.config, ModelServiceStatus)

    async def stop(self) -> ModelServiceStatus:
        return await self.sandbox._post("model_service/stop", {}, ModelServiceStatus)

    async def status(self) -> ModelServiceStatus:
        result = await self.sandbox._request(
            "GET", "model_service/status", params={"sandbox_id": self.sandbox._need_id()}
        )
        return ModelServiceStatus.model_validate(result)

    async def reset(self) -> ModelServiceStatus:
        """A new episode in the same sandbox: parked requests fail, indexes start at 1 again."""
        return await self.sandbox._post("model_service/reset", {}, ModelServiceStatus)

    async def watch_agent(self, pid: int | None = None, process_id: str | None = None) -> ModelServiceStatus:
        """End the session when the agent exits (`process_id`, a background process, also gives its exit code)."""
        body = {"pid": pid, "process_id": process_id}
        return await self.sandbox._post("model_service/watch", body, ModelServiceStatus)

    # ------------------------------------------------------------------ the direct channel

    async def next_turn(self, after: int = 0, timeout: float = 600.0) -> ModelTurn:
        """Request `after + 1` (the first with `after=0`), the session's end, or `timed_out` after `timeout` s."""
        return await self._anti_call(after, None, timeout)

    async def answer_and_next(
        self, index: int, response_payload: dict[str, Any], timeout: float = 600.0
    ) -> ModelTurn:
        """Answer request `index` and wait for request `index + 1`, in one round trip."""
        return await self._anti_call(index, response_payload, timeout)

    async def answer(self, index: int, response_payload: dict[str, Any]) -> ModelServiceStatus:
        body = {"index": index, "response_payload": response_payload}
        return await self.sandbox._post("model_service/answer", body, ModelServiceStatus)

    async def _anti_call(self, index: int, payload: dict[str, Any] | None, timeout: float) -> ModelTurn:
        body = {"index": index, "response_payload": payload, "timeout": timeout}
        return await self.sandbox._post("model_service/anti_call", body, ModelTurn)

    # ------------------------------------------------------------------ upstream's shape

    async def anti_call_llm(
        self,
        index: int,
        response_payload: str | dict[str, Any] | None = None,
        call_timeout: float = 600,
        check_interval: float = 3,
        channel: Literal["direct", "file"] = "direct",
    ) -> str:
        """Answer request `index` (when a payload is given) and return request `index + 1` as JSON text, or
        `SESSION_END` once the agent has exited. Raises `ModelServiceTimeout` after `call_timeout` s."""
        payload = json.loads(response_payload) if isinstance(response_payload, str) else response_payload
        if channel == "file":
            return await self._anti_call_file(index, payload, call_timeout, check_interval)
        turn = await self._anti_call(index, payload, call_timeout)
        if turn.timed_out:
            raise ModelServiceTimeout(f"no request {turn.index} from the agent in {call_timeout:g} s")
        return SESSION_END if turn.session_end else json.dumps(turn.request, ensure_ascii=False)

    async def _anti_call_file(
        self, index: int, payload: dict[str, Any] | None, call_timeout: float, check_interval: float
    ) -> str:
        status = await self.status()
        if not status.log_file or not status.python:
            raise RuntimeError("the model service is not running: start it first")
        args = [status.python, "-m", "rocklet.model_service", "anti-call-llm", "--index", str(index)]
        args += ["--log-file", status.log_file, "--timeout", str(call_timeout)]
        if payload is not None:
            path = f"/tmp/anti_call_response_{index}.json"
            await self.sandbox.write_file_by_path(json.dumps(payload, ensure_ascii=False), path)
            args += ["--response-file", path]
        obs = await self.sandbox.arun(
            shlex.join(args), mode="nohup", wait_timeout=call_timeout + 30, wait_interval=check_interval
        )
        if obs.exit_code != 0:
            if "no request" in obs.output:
                raise ModelServiceTimeout(obs.output.strip())
            raise RuntimeError(f"anti-call-llm failed (exit {obs.exit_code}): {obs.output.strip()[-500:]}")
        return obs.output.strip().splitlines()[-1]
