"""Faults during training on sandbox-served Sokoban, caused for real: a sandbox killed mid-rollout, the admin
killed and restarted mid-training, the admin gone for good, and a wrong base_url."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from integration_helpers import SANDBOX_CONFIG, TAG, TINY_CPU, config, on_generate, read_metrics

from roll.agentic.pipeline import AgenticPipeline
from roll.errors import EnvUnavailableError


def test_a_sandbox_killed_mid_rollout_is_replaced_and_the_step_completes(admin, tmp_path):
    cfg = config(SANDBOX_CONFIG, admin.url, tmp_path, "max_steps=2")
    pipe = AgenticPipeline(cfg, stdout=False)
    killed: list[str] = []

    def kill_one(n: int) -> None:
        if n == 2 and not killed:  # the first episode's second turn: every env is mid-episode
            env = pipe.schedulers["train"].slots[0].env
            killed.append(env.sandbox_id)
            os.kill(admin.sandbox_pid(env.sandbox_id), signal.SIGKILL)

    try:
        on_generate(pipe, kill_one)
        history = pipe.run()
        replacement = pipe.schedulers["train"].slots[0].env.sandbox_id
    finally:
        pipe.close()
    assert killed and replacement != killed[0]  # the slot plays on a new sandbox
    assert len(history) == 2
    first = read_metrics(cfg)[0]
    assert first["scheduler/env_failures"] >= 1
    assert first["scheduler/dropped_groups"] == 0.0  # the group was retried, not lost
    assert first[f"env/{TAG}/sandbox_replaced"] > 0  # the replacement is counted
    assert first[f"env/{TAG}/terminated"] == 1.0
    status = admin.client().get("/get_status", params={"sandbox_id": killed[0], "include_all_states": "true"})
    assert status.json()["result"]["state"] in ("failed", "stopped")


def test_training_rides_out_an_admin_restart(own_admin, tmp_path):
    admin = own_admin
    cfg = config(
        SANDBOX_CONFIG,
        admin.url,
        tmp_path,
        "max_steps=2",
        "custom_env.SokobanSandbox.env_config.retry_timeout=60",
    )
    pipe = AgenticPipeline(cfg, stdout=False)
    restarted = threading.Event()
    errors: list[BaseException] = []
    before: dict[str, object] = {}

    def restart_later() -> None:
        try:
            time.sleep(2.0)  # env calls meanwhile find nobody at the URL and retry
            admin.start()  # same port, same state dir: it adopts the running sandboxes
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            restarted.set()

    def kill_admin(n: int) -> None:
        if n == 2 and not restarted.is_set() and admin.proc.poll() is None:
            before["pid"] = admin.proc.pid
            before["sandboxes"] = [s.env.sandbox_id for s in pipe.schedulers["train"].slots]
            admin.kill9()  # sandboxes survive a kill -9 of the admin
            threading.Thread(target=restart_later, daemon=True).start()

    try:
        on_generate(pipe, kill_admin)
        history = pipe.run()
        after = [s.env.sandbox_id for s in pipe.schedulers["train"].slots]
    finally:
        restarted.wait(30)
        pipe.close()
    assert not errors, errors
    assert before and admin.proc.pid != before["pid"]  # it really was a new admin process
    assert after == before["sandboxes"]  # the envs kept their sandboxes through the restart
    assert len(history) == 2
    rows = read_metrics(cfg)
    assert rows[0][f"env/{TAG}/terminated"] == 1.0
    # the envs retried through the outage: no episode failed, no sandbox was replaced
    assert rows[0]["scheduler/env_failures"] == 0.0
    assert rows[0][f"env/{TAG}/sandbox_replaced"] == 0.0


def test_an_admin_that_stays_down_fails_training_with_a_clear_error(own_admin, tmp_path):
    admin = own_admin
    cfg = config(
        SANDBOX_CONFIG,
        admin.url,
        tmp_path,
        "max_steps=2",
        "custom_env.SokobanSandbox.env_config.retry_timeout=2",
    )
    pipe = AgenticPipeline(cfg, stdout=False)

    def kill_admin(n: int) -> None:
        if n == 2 and admin.proc.poll() is None:
            admin.kill9()

    try:
        on_generate(pipe, kill_admin)
        t0 = time.monotonic()
        with pytest.raises(EnvUnavailableError) as info:
            pipe.run()
        waited = time.monotonic() - t0
    finally:
        pipe.close()
    message = str(info.value)
    assert f"ROCK admin at {admin.url} stayed unreachable for retry_timeout=2 s" in message
    assert "base_url" in message
    assert waited < cfg.rollout_timeout_s  # it gave up after the env's window, not the rollout's


def test_a_wrong_base_url_fails_before_any_model_loads(tmp_path):
    from rocklet.testing import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    cache = tmp_path / "roll-cache"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "roll", "--config_path", str(TINY_CPU), "--config_name", SANDBOX_CONFIG),
            f"custom_env.SokobanSandbox.env_config.base_url={url}",
            f"output_dir={tmp_path / 'out'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ROLL_CACHE_DIR": str(cache)},
    )
    assert result.returncode != 0
    assert f"custom_envs.Sokoban.env_config.base_url: no ROCK admin answers at {url}" in result.stderr
    assert not cache.exists() or not any(cache.iterdir())  # the built-in model was never built
    assert not (tmp_path / "out").exists()
