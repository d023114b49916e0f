"""CPU of idle sandboxes: N started through a real admin (process runtime) and left alone, their processes'
CPU over a window read from /proc; in the same run, rocklets forked from one loaded interpreter (as the
zygote does) served by uvicorn's stock server (the 10/s tick it had before) and by `rocklet.server.QuietServer`.

    python packages/rock-admin/bench/bench_idle.py --out bench-results/rock-admin-idle.json

The issue's target is <= 0.05 ms CPU per second per idle sandbox at 1,000 sandboxes over 60 s; on a small
machine pass `--sandboxes` (default 200) and `--window`. CPU is each task's `schedstat` run time (ns, all
threads of every process in the sandbox), wake-ups are voluntary context switches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
TARGET_MS_PER_S = 0.05


def _tasks(pid: int) -> list[str]:
    try:
        return [f"/proc/{pid}/task/{tid}" for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in _tasks(p):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in Path(f"{task}/children").read_text().split()]
    return out


def _usage(pids: list[int]) -> tuple[int, int]:
    """(ns on a CPU, voluntary context switches) summed over every thread of `pids`."""
    cpu = switches = 0
    for pid in pids:
        for task in _tasks(pid):
            with contextlib.suppress(OSError, ValueError, IndexError):
                cpu += int(Path(f"{task}/schedstat").read_text().split()[0])
                for line in Path(f"{task}/status").read_text().splitlines():
                    if line.startswith("voluntary_ctxt_switches"):
                        switches += int(line.split()[1])
    return cpu, switches


def measure(groups: list[list[int]], window: float) -> tuple[float, list[tuple[int, int]]]:
    """Seconds elapsed and, per group (one sandbox's processes), (CPU ns, wake-ups) over the window."""
    before = [_usage(g) for g in groups]
    t = time.monotonic()
    time.sleep(window)
    after = [_usage(g) for g in groups]
    deltas = [(a[0] - b[0], a[1] - b[1]) for a, b in zip(after, before, strict=True)]
    return time.monotonic() - t, deltas


def summary(elapsed: float, deltas: list[tuple[int, int]]) -> dict[str, float]:
    """CPU ms per second and wake-ups per second, each (averaged over the groups) and in all."""
    cpu_ms = sum(d[0] for d in deltas) / 1e6
    n = max(len(deltas), 1)
    return {
        "processes": len(deltas),
        "window_s": round(elapsed, 2),
        "cpu_ms_per_s_each": round(cpu_ms / elapsed / n, 4),
        "wakeups_per_s_each": round(sum(d[1] for d in deltas) / elapsed / n, 2),
        "cpu_ms_per_s_total": round(cpu_ms / elapsed, 3),
    }


# ------------------------------------------------------------------------------------------ forked rocklets


def _launch(kind: str, n: int, workdir: Path) -> None:
    """The launcher process: load the rocklet once, fork `n` servers on Unix sockets, print their pids."""
    import uvicorn

    from rocklet.app import create_app
    from rocklet.config import RockletConfig
    from rocklet.server import QuietServer

    server_class = QuietServer if kind == "quiet" else uvicorn.Server
    pids = []
    for i in range(n):
        pid = os.fork()
        if pid == 0:
            app = create_app(RockletConfig(state_dir=str(workdir / f"s{i}")))
            config = uvicorn.Config(app, uds=str(workdir / f"{i}.sock"), log_level="warning", lifespan="on")
            server_class(config).run()
            os._exit(0)
        pids.append(pid)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    print(json.dumps(pids), flush=True)
    signal.sigwait({signal.SIGTERM})
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def forked(kind: str, n: int, window: float, workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    launcher = subprocess.Popen(
        [sys.executable, str(HERE), "--launch", kind, "--n", str(n), "--dir", str(workdir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert launcher.stdout is not None
        pids = json.loads(launcher.stdout.readline())
        deadline = time.monotonic() + 120
        while not all((workdir / f"{i}.sock").exists() for i in range(n)) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)  # startup done, nothing pending
        server = "uvicorn.Server" if kind == "stock" else "QuietServer"
        return {"server": server, **summary(*measure([[p] for p in pids], window))}
    finally:
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(30)


# ------------------------------------------------------------------------------------------ admin sandboxes


async def admin_sandboxes(n: int, window: float, workdir: Path) -> dict[str, Any]:
    from rock.sdk.sandbox.client import Sandbox
    from rock.sdk.sandbox.config import SandboxConfig
    from rock_admin.testing import running_admin

    # pids_max 32: room in the host's pids budget for many idle sandboxes (each holds 2-3 processes).
    with running_admin(workdir / "admin", auto_stop_interval="5", pids_max="32") as admin:
        config = SandboxConfig(base_url=admin.url, image="python:3.11", memory="256m", cpus=0.5)
        boxes: list[Sandbox] = []
        t = time.monotonic()
        for start in range(0, n, 20):  # in batches: the measurement is of idle sandboxes, not of the burst
            batch = [Sandbox(config) for _ in range(min(20, n - start))]
            await asyncio.gather(*(sb.start() for sb in batch))
            boxes += batch
        started = time.monotonic() - t
        try:
            pids = [(await sb.get_status()).metadata["pid"] for sb in boxes]
            await asyncio.sleep(3.0)
            groups = [_descendants(pid) for pid in pids]
            assert admin.proc is not None
            # The admin alongside (its own periodic work: auto-stop sweeps), as one more group measured apart.
            elapsed, deltas = await asyncio.to_thread(measure, [*groups, [admin.proc.pid]], window)
            result = summary(elapsed, deltas[:-1])
            result["admin_cpu_ms_per_s"] = round(deltas[-1][0] / 1e6 / elapsed, 3)
            result["processes_per_sandbox"] = round(sum(map(len, groups)) / max(len(groups), 1), 2)
            result["start_all_s"] = round(started, 1)
        finally:
            for start in range(0, len(boxes), 50):
                await asyncio.gather(
                    *(sb.close() for sb in boxes[start : start + 50]), return_exceptions=True
                )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", help="JSON file to write")
    parser.add_argument("--sandboxes", type=int, default=200, help="idle sandboxes through the admin")
    parser.add_argument("--forked", type=int, default=50, help="forked rocklets per server kind")
    parser.add_argument("--window", type=float, default=20.0, help="seconds of idleness measured")
    parser.add_argument("--quick", action="store_true", help="20 sandboxes, 10 forked, 5 s")
    parser.add_argument("--launch", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.launch:
        _launch(args.launch, args.n, Path(args.dir))
        return 0
    if args.quick:
        args.sandboxes, args.forked, args.window = 20, 10, 5.0
    scratch = HERE.parents[1] / ".scratch"
    scratch.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-idle-", dir=scratch) as tmp:
        print(f"forked rocklets x{args.forked}, stock uvicorn.Server ...", flush=True)
        stock = forked("stock", args.forked, args.window, Path(tmp) / "stock")
        print(json.dumps(stock), flush=True)
        print(f"forked rocklets x{args.forked}, QuietServer ...", flush=True)
        quiet = forked("quiet", args.forked, args.window, Path(tmp) / "quiet")
        print(json.dumps(quiet), flush=True)
        print(f"{args.sandboxes} idle sandboxes through the admin ...", flush=True)
        try:
            sandboxes = asyncio.run(admin_sandboxes(args.sandboxes, args.window, Path(tmp)))
        except Exception as exc:  # reported, not hidden: the forked figures still stand
            sandboxes = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:500]}
    report = {
        "benchmark": "idle_sandbox_cpu",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "target_cpu_ms_per_s_each": TARGET_MS_PER_S,
        "forked_rocklets_before_stock_uvicorn": stock,
        "forked_rocklets_after_quiet_server": quiet,
        "admin_sandboxes_idle": sandboxes,
        "target_met": sandboxes.get("cpu_ms_per_s_each", 1e9) <= TARGET_MS_PER_S,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
