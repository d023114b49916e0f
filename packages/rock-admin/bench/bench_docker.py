"""rock-admin `docker` runtime benchmark, against Podman's Docker-compatible service started here.

    python packages/rock-admin/bench/bench_docker.py --out bench-results/rock-admin-docker.json

Figures, all from one run on one machine:
- the floor: `podman run --rm --network none IMAGE true` (the engine alone, no rocklet), sequential p50/p99;
- create → first `echo` through the admin (HTTP `/start`, `/create_session`, `/run_in_session`), sequential
  p50/p99, and the overhead over the floor at p50 (issue 11's target: ≤ 0.1 s), for three admins: the default
  (the rocklet forked into the container, each container its own uid range), `userns: off` (root is host
  root) and `docker_rocklet: exec` (the rocklet is the container's command); each round runs the floor once
  and one create on each admin in turn, so the machine's noise falls on all alike;
- a burst of N creates at once (p50/p99, success, wall);
- create throughput (sandboxes/s, 8 at a time) of the docker runtime and of the `process` runtime.
Every admin is stopped by PID, the engine service too, and every container is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import httpx

from rock_admin.engines import podman
from rock_admin.testing import PREFIX, Admin, ok, remove_containers, running_admin

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_admin import pct


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_s": round(pct(values, 50), 3), "p99_s": round(pct(values, 99), 3)}


def client(admin: Admin) -> httpx.Client:
    # Generous: a burst on a small, busy machine queues for minutes (the admin's /start waits ≤ 85 s).
    return httpx.Client(base_url=admin.url + PREFIX, timeout=300)


#: The admins compared (settings over the defaults); the first is the default configuration.
VARIANTS = {"default": {}, "userns_off": {"userns": "off"}, "exec": {"docker_rocklet": "exec"}}


def floor() -> float:
    """The engine alone: a container that runs `true` and is removed."""
    t0 = time.perf_counter()
    podman.podman(podman.podman_dir(), "run", "--rm", "--network", "none", podman.BASE_IMAGE, "true")
    return time.perf_counter() - t0


def create_and_echo(admin: Admin) -> tuple[float, str]:
    """Seconds from `/start` to the first `echo`'s output; the sandbox id (empty on failure)."""
    with client(admin) as http:
        t0 = time.perf_counter()
        body = http.post("/start", json={"image": "python:3.11", "memory": "512m", "cpus": 1}).json()
        if body["status"] != "Success":
            return time.perf_counter() - t0, ""
        sid = body["result"]["sandbox_id"]
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        out = ok(http.post("/run_in_session", json={"sandbox_id": sid, "session": "s", "command": "echo hi"}))
        elapsed = time.perf_counter() - t0
        return elapsed, sid if out["output"].strip() == "hi" else ""  # type: ignore[index]


def delete_all(admin: Admin, sids: list[str]) -> None:
    with client(admin) as http:
        for sid in sids:
            if sid:
                ok(http.post("/delete", json={"sandbox_id": sid}))


def sequential(admins: dict[str, Admin], n: int) -> dict[str, list[float]]:
    """n rounds of the floor and one create on each admin (deleted at once), in turn."""
    times: dict[str, list[float]] = {"floor": [], **{name: [] for name in admins}}
    for _ in range(n):
        times["floor"].append(floor())
        for name, admin in admins.items():
            elapsed, sid = create_and_echo(admin)
            if sid:
                times[name].append(elapsed)
                delete_all(admin, [sid])
    return times


def burst(admin: Admin, n: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(lambda _: create_and_echo(admin), range(n)))
    wall = time.perf_counter() - t0
    delete_all(admin, [sid for _, sid in results])
    done = [t for t, sid in results if sid]
    return {**summary(done), "success": len(done), "of": n, "wall_s": round(wall, 2)}


def throughput(admin: Admin, n: int) -> float:
    """Sandboxes per second reaching `running` (the `/start` reply), 8 requests at a time."""

    def start() -> str:
        with client(admin) as http:
            result = ok(http.post("/start", json={"image": "python:3.11", "memory": "512m", "cpus": 1}))
            return result["sandbox_id"]  # type: ignore[index]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        sids = list(pool.map(lambda _: start(), range(n)))
    rate = n / (time.perf_counter() - t0)
    delete_all(admin, sids)
    return round(rate, 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sequential", type=int, default=20, help="sequential creates (and floor runs)")
    parser.add_argument("--burst", type=int, default=32, help="creates at once")
    parser.add_argument("--throughput", type=int, default=24, help="sandboxes per runtime for the rate")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()

    podman.ensure_base_image()
    result: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_at_start": os.getloadavg()[0],
        }
    }
    with tempfile.TemporaryDirectory(prefix="bench-docker-", dir=podman.podman_dir()) as tmp:
        states = {name: Path(tmp) / f"docker-admin-{name}" for name in VARIANTS}
        with podman.podman_service() as url, contextlib.ExitStack() as stack:
            client = docker.DockerClient(base_url=url, version="1.41")
            try:
                admins = {
                    name: stack.enter_context(
                        running_admin(
                            states[name], runtime="docker", docker_host=url, log_level="warning", **extra
                        )
                    )
                    for name, extra in VARIANTS.items()
                }
                for warm in admins.values():  # page cache, the engine's image lookup
                    delete_all(warm, [create_and_echo(warm)[1]])
                times = sequential(admins, args.sequential)
                result["burst"] = burst(admins["default"], args.burst)
                result["throughput_docker_per_s"] = throughput(admins["default"], args.throughput)
            finally:
                stack.close()
                for state in states.values():
                    remove_containers(client, state)
                client.close()
        with running_admin(Path(tmp) / "process-admin", log_level="warning") as admin:
            result["throughput_process_per_s"] = throughput(admin, args.throughput)
    result["floor_podman_run_true"] = floor_summary = summary(times["floor"])
    for name in VARIANTS:
        result[f"create_to_echo_sequential_{name}"] = {
            **summary(times[name]),
            "overhead_p50_s": round(summary(times[name])["p50_s"] - floor_summary["p50_s"], 3),
        }
    result["throughput_ratio_process_over_docker"] = round(
        result["throughput_process_per_s"] / result["throughput_docker_per_s"], 1
    )

    def row(name: str, label: str) -> tuple[str, str]:
        fig = result[f"create_to_echo_sequential_{name}"]
        return (
            label,
            f"p50 {fig['p50_s']:.3f} s, p99 {fig['p99_s']:.3f} s, floor + {fig['overhead_p50_s']:.3f} s",
        )

    rows = [
        (
            "floor: podman run --rm IMAGE true",
            f"p50 {floor_summary['p50_s']:.3f} s, p99 {floor_summary['p99_s']:.3f} s",
        ),
        row("default", "create → first echo (default: fork)"),
        row("userns_off", "the same, userns: off"),
        row("exec", "the same, docker_rocklet: exec"),
        (
            f"burst of {args.burst} (create → echo)",
            f"p50 {result['burst']['p50_s']:.3f} s, p99 {result['burst']['p99_s']:.3f} s, "
            f"{result['burst']['success']}/{args.burst} ok, wall {result['burst']['wall_s']} s",
        ),
        ("create throughput, docker", f"{result['throughput_docker_per_s']} sandboxes/s"),
        ("create throughput, process", f"{result['throughput_process_per_s']} sandboxes/s"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
