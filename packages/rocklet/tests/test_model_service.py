"""The model service in a real rocklet: agents call it with the official OpenAI client (and raw HTTP for bad
input), the trainer's side answers through the rocklet's direct channel or through the log file."""

from __future__ import annotations

import concurrent.futures as cf
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from rock.actions import SESSION_END
from rocklet.testing import RunningRocklet, running_rocklet


def completion(text: str, **message: object) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1,
        "model": "policy",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, **message},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


@pytest.fixture
def service(http: httpx.Client) -> Iterator[dict]:
    r = http.post("/model_service/start", json={"port": 0, "request_timeout": 20})
    assert r.status_code == 200, r.text
    status = r.json()
    yield status
    http.post("/model_service/stop")


def agent(status: dict, **kw: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=status["base_url"], api_key="unused", max_retries=0, **kw)


def anti_call(http: httpx.Client, index: int, payload: dict | None = None, timeout: float = 20) -> dict:
    r = http.post(
        "/model_service/anti_call",
        json={"index": index, "response_payload": payload, "timeout": timeout},
        timeout=timeout + 10,
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_a_parked_request_is_answered_through_the_direct_channel(http: httpx.Client, service: dict) -> None:
    messages = [{"role": "user", "content": "list the files"}]
    tools = [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}]
    with cf.ThreadPoolExecutor(2) as pool:
        asked = pool.submit(
            lambda: agent(service).chat.completions.create(model="policy", messages=messages, tools=tools)
        )
        turn = anti_call(http, 0)
        assert turn["index"] == 1 and not turn["session_end"]
        assert turn["request"]["messages"] == messages
        assert turn["request"]["tools"] == tools  # tool fields reach the trainer as the agent sent them
        call = {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": '{"command":"ls"}'}}
        nxt = pool.submit(anti_call, http, 1, completion("", tool_calls=[call]), 2)
        reply = asked.result(timeout=20)
        assert reply.choices[0].message.tool_calls[0].function.arguments == '{"command":"ls"}'
        assert nxt.result(timeout=20)["timed_out"]  # no second request came
    status = http.get("/model_service/status").json()
    assert status["requests"] == 1 and status["pending"] == []
    log = Path(status["log_file"]).read_text().splitlines()
    assert log[0].startswith("LLM_REQUEST_START") and '"index": 1' in log[0]
    assert log[1].startswith("LLM_RESPONSE_START") and '"index": 1' in log[1]


def test_streaming_clients_get_sse_chunks(http: httpx.Client, service: dict) -> None:
    with cf.ThreadPoolExecutor(2) as pool:
        asked = pool.submit(
            lambda: list(
                agent(service).chat.completions.create(
                    model="policy", messages=[{"role": "user", "content": "hi"}], stream=True
                )
            )
        )
        anti_call(http, 0)
        http.post("/model_service/answer", json={"index": 1, "response_payload": completion("hello there")})
        chunks = asked.result(timeout=20)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "hello there"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_the_file_channel_answers_as_upstream_does(http: httpx.Client, service: dict, tmp_path: Path) -> None:
    """`python -m rocklet.model_service anti-call-llm`: the log-file path, the one upstream has."""
    log = http.get("/model_service/status").json()["log_file"]

    def cli(index: int, response: dict | None = None) -> str:
        args = [sys.executable, "-m", "rocklet.model_service", "anti-call-llm", "--index", str(index)]
        if response is not None:
            path = tmp_path / f"answer-{index}.json"
            path.write_text(json.dumps(response))
            args += ["--response-file", str(path)]
        out = subprocess.run([*args, "--log-file", log, "--timeout", "20"], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    with cf.ThreadPoolExecutor(2) as pool:
        asked = pool.submit(
            lambda: agent(service).chat.completions.create(
                model="policy", messages=[{"role": "user", "content": "via the file"}]
            )
        )
        assert json.loads(cli(0))["messages"][0]["content"] == "via the file"
        nxt = pool.submit(cli, 1, completion("answered from the log"))
        assert asked.result(timeout=20).choices[0].message.content == "answered from the log"
        watched = http.post("/processes", json={"command": "sleep 0.3"}).json()
        http.post("/model_service/watch", json={"process_id": watched["process_id"]})
        assert nxt.result(timeout=20) == SESSION_END


def test_the_agents_exit_ends_the_session_with_its_exit_code(http: httpx.Client, service: dict) -> None:
    proc = http.post("/processes", json={"command": "sleep 0.2; exit 7"}).json()
    assert http.post("/model_service/watch", json={"process_id": proc["process_id"]}).status_code == 200
    turn = anti_call(http, 0)
    assert turn["session_end"] and turn["exit_code"] == 7
    status = http.get("/model_service/status").json()
    assert status["session_ended"] and status["agent_exit_code"] == 7
    # a bare pid (upstream's /v1/agent/watch) that is not ours is watched too, without an exit code
    other = subprocess.Popen(["sleep", "0.2"])
    try:
        http.post("/model_service/reset")
        r = httpx.post(service["base_url"].removesuffix("/v1") + "/v1/agent/watch", json={"pid": other.pid})
        assert r.status_code == 200, r.text
        turn = anti_call(http, 0)
        assert turn["session_end"] and turn["exit_code"] is None
    finally:
        other.wait()


def test_reset_starts_the_next_episode_at_index_one(http: httpx.Client, service: dict) -> None:
    with cf.ThreadPoolExecutor(2) as pool:
        first = pool.submit(
            lambda: agent(service).chat.completions.create(
                model="policy", messages=[{"role": "user", "content": "a"}]
            )
        )
        assert anti_call(http, 0)["index"] == 1
        http.post("/model_service/reset")
        with pytest.raises(openai.InternalServerError, match="session ended"):
            first.result(timeout=20)  # a request of the old episode fails, it never hangs
        second = pool.submit(
            lambda: agent(service).chat.completions.create(
                model="policy", messages=[{"role": "user", "content": "b"}]
            )
        )
        turn = anti_call(http, 0)
        assert turn["index"] == 1 and turn["request"]["messages"][0]["content"] == "b"
        anti_call(http, 1, completion("ok"), timeout=0.5)
        assert second.result(timeout=20).choices[0].message.content == "ok"


def test_a_request_nobody_answers_times_out_with_504(http: httpx.Client) -> None:
    status = http.post("/model_service/start", json={"port": 0, "request_timeout": 0.5}).json()
    try:
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as err:
            agent(status).chat.completions.create(model="policy", messages=[{"role": "user", "content": "x"}])
        assert err.value.status_code == 504
        assert "request_timeout" in err.value.message
        assert time.monotonic() - started < 10
        assert http.get("/model_service/status").json()["pending"] == []
    finally:
        http.post("/model_service/stop")


def test_bad_agent_requests_get_openai_error_bodies(http: httpx.Client) -> None:
    status = http.post(
        "/model_service/start",
        json={"port": 0, "max_pending": 2, "max_body_bytes": 4096, "request_timeout": 20},
    ).json()
    url = status["base_url"] + "/chat/completions"
    try:
        cases = [
            (b"{not json", 400, None),
            (b"[1, 2]", 400, None),
            (json.dumps({"model": "policy"}).encode(), 400, None),
            (json.dumps({"model": "gpt-9", "messages": []}).encode(), 404, "model_not_found"),
            (json.dumps({"model": "policy", "messages": ["x" * 5000]}).encode(), 413, None),
        ]
        for body, code, err_code in cases:
            r = httpx.post(url, content=body, headers={"content-type": "application/json"})
            assert r.status_code == code, (body[:40], r.text)
            assert r.json()["error"]["message"], r.text
            if err_code:
                assert r.json()["error"]["code"] == err_code
        # a flood: two parked at most, the third is refused at once
        with cf.ThreadPoolExecutor(2) as pool:
            ok = json.dumps({"model": "policy", "messages": []}).encode()
            parked = [pool.submit(httpx.post, url, content=ok, timeout=30) for _ in range(2)]
            deadline = time.monotonic() + 10
            while (
                len(http.get("/model_service/status").json()["pending"]) < 2 and time.monotonic() < deadline
            ):
                time.sleep(0.02)
            third = httpx.post(url, content=ok)
            assert third.status_code == 429 and third.json()["error"]["code"] == "rate_limit_exceeded"
            for index in (1, 2):
                http.post("/model_service/answer", json={"index": index, "response_payload": completion("x")})
            assert [p.result(timeout=20).status_code for p in parked] == [200, 200]
        assert httpx.get(status["base_url"] + "/models").json()["data"][0]["id"] == "policy"
    finally:
        http.post("/model_service/stop")


def test_trainer_side_errors_name_the_field(http: httpx.Client) -> None:
    r = http.post("/model_service/anti_call", json={"index": 0, "timeout": 1})
    assert r.status_code == 511 and "not running" in r.text
    r = http.post("/model_service/start", json={"type": "proxy"})
    assert r.status_code == 422 and "proxy_base_url" in r.text
    r = http.post("/model_service/start", json={"port": 70000})
    assert r.status_code == 422 and "port" in r.text
    r = http.post("/model_service/watch", json={})
    assert r.status_code == 422 and "pid" in r.text


def test_proxy_mode_forwards_and_records(http: httpx.Client, tmp_path: Path, rocklet: RunningRocklet) -> None:
    """A proxy in front of a second service in local mode (a real OpenAI-shaped upstream on real HTTP):
    the agent's call goes through, the answer comes back, the turn is recorded."""
    upstream = http.post("/model_service/start", json={"port": 0, "request_timeout": 20}).json()
    # one rocklet holds one service: the proxy runs in a second rocklet
    recording = tmp_path / "traj.jsonl"
    with running_rocklet(tmp_path / "proxy-rocklet") as second, second.client(timeout=30) as http2:
        proxy = http2.post(
            "/model_service/start",
            json={
                "type": "proxy",
                "port": 0,
                "proxy_base_url": upstream["base_url"],
                "recording_file": str(recording),
            },
        ).json()
        with cf.ThreadPoolExecutor(2) as pool:
            asked = pool.submit(
                lambda: agent(proxy).chat.completions.create(
                    model="policy", messages=[{"role": "user", "content": "through the proxy"}]
                )
            )
            turn = anti_call(http, 0)
            assert turn["request"]["messages"][0]["content"] == "through the proxy"
            anti_call(http, 1, completion("from upstream"), timeout=0.5)
            assert asked.result(timeout=20).choices[0].message.content == "from upstream"
        record = json.loads(recording.read_text().splitlines()[0])
        assert record["status"] == 200
        assert record["response"]["choices"][0]["message"]["content"] == "from upstream"
        http2.post("/model_service/stop")
    http.post("/model_service/stop")


def test_rocklet_start_up_imports_no_http_client() -> None:
    """httpx (a fifth of the rocklet's import CPU) loads only when a sandbox starts a proxy-mode service."""
    code = "import sys, rocklet.app; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
