"""An idle rocklet sleeps: no periodic wake-ups (uvicorn's 10/s tick is gone), yet it still stops on SIGTERM at
once and stamps a current `Date` header."""

from __future__ import annotations

import os
import signal
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx

from rocklet.testing import RunningRocklet, running_rocklet


def _wakeups_and_cpu(pid: int) -> tuple[int, int]:
    """Voluntary context switches (each a sleep ended by a wake-up) and ns on a CPU, over all threads."""
    switches = cpu_ns = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches"):
                    switches += int(line.split()[1])
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            cpu_ns += int(f.read().split()[0])
    return switches, cpu_ns


def test_idle_rocklet_has_no_timer_wakeups(rocklet: RunningRocklet, http: httpx.Client) -> None:
    # Used first: a session (its bash stays, idle), a command, a one-shot program; then nothing for 3 s.
    name = "idle-probe"
    assert http.post("/create_session", json={"session": name}).status_code == 200
    r = http.post("/run_in_session", json={"action_type": "bash", "command": "echo hi", "session": name})
    assert r.json()["output"].strip() == "hi"
    assert http.post("/execute", json={"command": ["true"]}).json()["exit_code"] == 0
    with rocklet.client(timeout=10.0) as fresh:  # a connection the rocklet sees close
        assert fresh.get("/is_alive").status_code == 200
    time.sleep(0.5)
    switches0, cpu0 = _wakeups_and_cpu(rocklet.pid)
    time.sleep(3.0)
    switches1, cpu1 = _wakeups_and_cpu(rocklet.pid)
    # uvicorn's own loop woke ~30 times in 3 s; a keep-alive timer of the client's connection may fire once.
    assert switches1 - switches0 <= 4, f"{switches1 - switches0} wake-ups in 3 s of idleness"
    assert cpu1 - cpu0 < 20_000_000, f"{(cpu1 - cpu0) / 1e6:.1f} ms of CPU in 3 s of idleness"
    http.post("/close_session", json={"session": name})


def test_date_header_is_current(http: httpx.Client) -> None:
    time.sleep(1.1)  # past the second of any earlier response
    date = http.get("/").headers["date"]
    assert abs(parsedate_to_datetime(date).timestamp() - time.time()) < 5


def test_sigterm_stops_an_idle_rocklet_at_once(tmp_path: Path) -> None:
    with running_rocklet(tmp_path) as info:
        time.sleep(0.5)
        t = time.monotonic()
        os.kill(info.pid, signal.SIGTERM)
        while time.monotonic() - t < 10:
            try:
                os.kill(info.pid, 0)
                if Path(f"/proc/{info.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            except ProcessLookupError:
                break
            time.sleep(0.02)
        took = time.monotonic() - t
    assert took < 3, f"SIGTERM took {took:.1f} s"
