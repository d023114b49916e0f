"""`sokoban_sandbox`: the in-sandbox game server, config checks, and the env against a real ROCK admin
(rock-admin's `running_admin`; the tests that need rock-sdk or rock-admin skip without them, except in CI)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import gem_envs
import roll.envs  # noqa: F401  (registers sokoban_sandbox)
from roll.config import ConfigError, load_and_validate
from roll.envs.sokoban_sandbox import SokobanSandboxEnv
from roll.envs.sokoban_server import GameSession
from roll.errors import EnvUnavailableError, SandboxEnvError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
LEVEL = {"dim_room": [6, 6], "num_boxes": 1, "max_steps": 10, "format_penalty": -0.15}
ACTIONS = [
    "<answer>Up</answer>",
    "no answer here",
    "<answer>Left</answer>",
    "<answer>Right</answer>",
    "quotes ' \" $(touch /x) `id` \\ and\nnewlines",
    "<answer>Down</answer>",
    "<|im_start|><answer>Up</answer><|im_end|>",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _play(env, seed: int) -> list:
    """Everything an episode shows: reset, then ACTIONS until the episode ends."""
    out = [env.reset(seed=seed)]
    for action in ACTIONS * 2:
        step = env.step(action)
        out.append(step)
        if step[2] or step[3]:
            break
    return out


# ----------------------------------------------------------------------------- the game server


def test_game_session_matches_the_local_env_and_never_applies_a_resent_request_twice():
    session, local = GameSession("sokoban", LEVEL), gem_envs.make("sokoban", **LEVEL)
    reply = json.loads(session.handle(json.dumps({"n": 1, "op": "reset", "seed": 5})))
    assert (reply["observation"], reply["info"]) == local.reset(seed=5)
    step = {"n": 2, "op": "step", "action": "<answer>Up</answer>"}
    first = session.handle(json.dumps(step))
    assert session.handle(json.dumps(step)) == first  # resent after a lost reply: same answer
    expected = local.step("<answer>Up</answer>")
    reply = json.loads(first)
    assert first.startswith('{"n": 2, ')
    assert (reply["observation"], reply["reward"], reply["terminated"], reply["truncated"]) == expected[:4]
    assert reply["info"] == expected[4]
    # the next step continues from one move, not two
    nxt = json.loads(session.handle(json.dumps({**step, "n": 3})))
    assert nxt["observation"] == local.step("<answer>Up</answer>")[0]


def test_game_session_reports_errors_without_dying():
    session = GameSession("sokoban", LEVEL)
    assert "bad request" in json.loads(session.handle("not json"))["error"]
    assert "unknown op" in json.loads(session.handle('{"n": 1, "op": "fly"}'))["error"]
    assert "ResetNeeded" in json.loads(session.handle('{"n": 2, "op": "step", "action": "x"}'))["error"]
    assert json.loads(session.handle('{"n": 3, "op": "ping"}')) == {"n": 3, "ok": True}


def test_server_process_answers_over_tcp(tmp_path):
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "roll.envs.sokoban_server",
            "--env-kwargs",
            json.dumps(LEVEL),
            "--port-file",
            str(port_file),
        ],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "server did not write its port"
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", int(port_file.read_text()))) as conn:
            reader = conn.makefile("r", encoding="ascii")
            conn.sendall(b'{"n": 1, "op": "reset", "seed": 9}\n')
            reply = json.loads(reader.readline())
        assert reply["observation"] == gem_envs.make("sokoban", **LEVEL).reset(seed=9)[0]
    finally:
        proc.kill()
        proc.wait(10)


# ----------------------------------------------------------------------------- config checks


@pytest.mark.parametrize(
    ("config", "key", "words"),
    [
        ({"base_url": "localhost:8080"}, "base_url", "not an http(s) URL"),
        ({"num_boxs": 1}, "num_boxs", "did you mean 'num_boxes'"),
        ({"dim_room": [3, 3]}, "dim_room", ">= 5"),
        ({"retry_timeout": 0}, "retry_timeout", "positive"),
        ({"game_env_id": "nope"}, "game_env_id", "unknown env id"),
    ],
)
def test_check_config_names_the_key(config, key, words):
    problems = dict(SokobanSandboxEnv.check_config(config))
    assert key in problems and words in problems[key], problems
    with pytest.raises(ValueError, match=key):
        SokobanSandboxEnv(**config)


def test_wrong_base_url_fails_validation_before_any_model_loads():
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    with pytest.raises(ConfigError) as info:
        load_and_validate(
            EXAMPLES / "tiny-cpu",
            "agentic_sokoban_sandbox",
            [
                f"custom_env.SokobanSandbox.env_config.base_url={url}",
                "custom_env.SokobanSandbox.env_config.num_boxs=1",
            ],
        )
    text = str(info.value)
    assert f"custom_envs.Sokoban.env_config.base_url: no ROCK admin answers at {url}" in text
    assert "custom_envs.Sokoban.env_config.num_boxs" in text  # every problem at once
    with pytest.raises(ConfigError, match=r"custom_envs\.Sokoban\.rock\.base_url: no ROCK admin"):
        load_and_validate(
            EXAMPLES / "tiny-cpu",
            "agentic_sokoban_gem_api",
            [f"custom_env.SokobanGemApi.rock.base_url={url}"],
        )


def test_upstream_quick_start_counterpart_loads():
    from roll.config import load_config

    cfg, _ = load_config(EXAMPLES / "qwen2.5-0.5B-agentic", "agentic_val_sokoban_sandbox")
    env = cfg.custom_envs["SokobanSandbox"]
    assert env.env_type == "sokoban_sandbox"
    assert env.env_config["base_url"] == "http://localhost:8080"
    assert cfg.train_env_manager.tags == cfg.val_env_manager.tags == ["SokobanSandbox"]


def test_one_line_switches_between_local_gem_api_and_sandbox_envs():
    def env_of(name: str, overrides: list[str]):
        cfg, _, _ = load_and_validate(EXAMPLES / "tiny-cpu", name, overrides, check_environment=False)
        return cfg.custom_envs["Sokoban"]

    sandbox = env_of("agentic_sokoban_sandbox", [])
    assert sandbox.env_type == "sokoban_sandbox" and sandbox.rock is None
    assert sandbox.env_config["base_url"].startswith("http")
    gem_api = env_of("agentic_sokoban_gem_api", [])
    assert gem_api.env_type == "SimpleSokoban" and gem_api.rock["mode"] == "pooled"
    local = env_of("agentic_sokoban_sandbox", ["custom_envs.Sokoban=${custom_env.SimpleSokoban}"])
    assert local.env_type == "SimpleSokoban" and local.rock is None


def _needs(module: str) -> None:
    """Skip without `module` (roll-core's extras), except in CI where the suite installs everything."""
    if not os.environ.get("CI"):
        pytest.importorskip(module, reason=f"needs {module} (pip install roll-core[rock] / rock-admin)")


def test_unreachable_admin_is_retried_then_named(monkeypatch):
    _needs("rock")
    import rock.retry

    slept: list[float] = []

    def recorded(seconds: float):
        for delay in real(seconds):
            slept.append(delay)
            yield delay

    real = rock.retry.delays_within
    monkeypatch.setattr(rock.retry, "delays_within", recorded)
    url = f"http://127.0.0.1:{_free_port()}"
    env = SokobanSandboxEnv(base_url=url, retry_timeout=1.0, **LEVEL)
    with pytest.raises(
        EnvUnavailableError, match=rf"ROCK admin at {url} stayed unreachable for retry_timeout=1 s"
    ):
        env.reset(seed=0)
    assert slept[:2] == [0.1, 0.2] and sum(slept) <= 1.0  # it backed off and retried within the budget
    env.close()


# ----------------------------------------------------------------------------- against a real admin


@pytest.fixture(scope="module")
def admin(tmp_path_factory):
    _needs("rock_admin")
    from rock_admin.testing import running_admin

    with running_admin(tmp_path_factory.mktemp("rock-admin")) as running:
        yield running


def test_sandbox_env_plays_exactly_like_the_local_env(admin):
    env = gem_envs.make("sokoban_sandbox", base_url=admin.url, **LEVEL)
    try:
        for seed in (0, 1, 42):
            assert _play(env, seed) == _play(gem_envs.make("sokoban", **LEVEL), seed)
        assert env.render() == env.render_cache != ""
    finally:
        env.close()
    status = admin.client().get(
        "/get_status", params={"sandbox_id": env.sandbox_id, "include_all_states": "true"}
    )
    assert status.json()["result"]["state"] == "stopped"  # close() stopped the sandbox


def test_steps_go_over_the_port_forward_not_bash(admin):
    env = SokobanSandboxEnv(base_url=admin.url, **{**LEVEL, "max_steps": 500})
    try:
        env.reset(seed=5)
        commands: list[str] = []
        run_in_session = env.sandbox.run_in_session
        env.sandbox.run_in_session = lambda action: (commands.append(action.command), run_in_session(action))[
            1
        ]
        for _ in range(20):
            env.step("<answer>Left</answer>")
        env.reset(seed=6)
        assert commands == []  # 21 requests, no session command
    finally:
        env.close()


def test_many_envs_in_threads(admin):
    results: dict[int, object] = {}

    def play(i: int) -> None:
        env = SokobanSandboxEnv(base_url=admin.url, **LEVEL)
        try:
            results[i] = _play(env, 100 + i) == _play(gem_envs.make("sokoban", **LEVEL), 100 + i)
        except Exception as exc:  # reported below
            results[i] = exc
        finally:
            env.close()

    threads = [threading.Thread(target=play, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == {i: True for i in range(6)}


def test_a_killed_sandbox_is_a_sandbox_env_error(admin):
    env = SokobanSandboxEnv(base_url=admin.url, **{**LEVEL, "max_steps": 500})
    try:
        env.reset(seed=3)
        os.kill(admin.sandbox_pid(env.sandbox_id), 9)
        with pytest.raises(SandboxEnvError, match=env.sandbox_id) as info:
            for _ in range(50):  # the admin notices the death at once; a step or two may still be in flight
                env.step("<answer>Up</answer>")
                time.sleep(0.05)
        assert "ResetNeeded" not in str(info.value)
    finally:
        env.close()


def test_healthy_probe_tells_a_live_sandbox_from_a_dead_one(admin):
    """What the env manager asks before replacing an env: alive (reuse it) or not (a new sandbox)."""
    env = SokobanSandboxEnv(base_url=admin.url, **{**LEVEL, "max_steps": 500})
    try:
        assert not env.healthy()  # not started: nothing to reuse
        env.reset(seed=3)
        assert env.healthy()  # the game server answers a ping
        with env._lock:  # a call in flight holds the env: the probe asks the admin about the sandbox
            assert env.healthy()
        observation = env.step("<answer>Up</answer>")[0]
        assert observation  # the ping did not disturb the episode
        os.kill(admin.sandbox_pid(env.sandbox_id), 9)
        deadline = time.monotonic() + 30
        while env.healthy() and time.monotonic() < deadline:  # the admin notices the death within moments
            time.sleep(0.1)
        assert not env.healthy()
        with env._lock:
            assert not env.healthy()
    finally:
        env.close()
    assert not env.healthy()
