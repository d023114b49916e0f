"""The demo's progress when stderr is a log file: plain lines that count and say what the job waits for."""

from __future__ import annotations

import io
import re
import time

from rock_roll_integration.progress import DemoProgress


def test_plain_lines_count_episodes_and_name_the_wait() -> None:
    log = io.StringIO()
    progress = DemoProgress(log, interval=0.2, tty=False)
    try:
        progress.stage("validate (before)", 32, "episodes")
        progress.env(0, "waiting for 20 env starts (slowest 40 s), 4 queued")
        progress.env(1, "")
        progress.env(1, "")
        deadline = time.monotonic() + 10
        while "2/32" not in log.getvalue() and time.monotonic() < deadline:  # the periodic line
            time.sleep(0.05)
        progress.env(0, "")  # the rollout is over: no stale wait in later lines
        assert progress.line().endswith("validate (before) 2/32 episodes")
        progress.stage("RL", 40, "steps")
        progress.env(3, "")
        progress.advance(1, "score=1.50")
        assert progress.line().endswith("RL 1/40 steps; score=1.50")
    finally:
        progress.close()
    lines = log.getvalue().splitlines()
    assert re.fullmatch(r"\[0:00:0\d\] validate \(before\) 0/32 episodes", lines[0])  # at the stage's start
    assert any(
        line.endswith("validate (before) 2/32 episodes; waiting for 20 env starts (slowest 40 s), 4 queued")
        for line in lines
    ), lines
    assert any(line.endswith("] RL 0/40 steps") for line in lines), lines
