"""rock-admin `ray` scheduler benchmark: create → first `echo` (sequential p50/p99) and create throughput
(N at once) with `scheduler: ray` against `scheduler: local`, in the same run on the same machine.

    python packages/rock-admin/bench/bench_ray.py --out bench-results/rock-admin-ray.json

Starts a Ray cluster simulated on this machine (a head with no CPUs and two worker nodes, each its own
`ray start` process group), then one admin per mode, one after another: `local` (the process runtime in the
admin), `ray` dialing the node's Unix socket (`ray_dial: auto`, the same host), and `ray` over the node
agent's TCP forwarder (`ray_dial: url`, as from another host). Everything is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_admin import bench_burst, bench_sequential

from rock_admin.testing import running_admin
from rock_admin.testing_ray import local_ray_cluster

GIB = 1024**3
#: Worker nodes big enough that reservations never limit the benchmark (CPUs are Ray's accounting here).
NODE_CPUS = 64
NODE_MEMORY = 64 * GIB


async def measure(url: str, sequential: int, burst: int) -> dict[str, Any]:
    # Cold start apart: the first sandboxes bring up each node's agent and zygote (local: the admin's zygote
    # is up before it serves). Two at once land on both nodes.
    cold = await bench_burst(url, 2)
    seq = await bench_sequential(url, sequential)
    many = await bench_burst(url, burst)
    many["creates_per_s"] = round(burst * many["success_rate"] / many["wall_s"], 1)
    return {"cold_start": cold, "sequential": seq, "burst": many}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--sequential", type=int, default=30)
    parser.add_argument("--burst", type=int, default=30)
    args = parser.parse_args()
    scratch = Path(__file__).resolve().parents[1] / ".scratch"
    scratch.mkdir(exist_ok=True)
    modes: dict[str, dict[str, str]] = {
        "local": {},
        "ray (unix socket)": {"scheduler": "ray", "ray_dial": "auto"},
        "ray (tcp forwarder)": {"scheduler": "ray", "ray_dial": "url"},
    }
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ray-", dir=scratch) as tmp, local_ray_cluster() as cluster:
        for name in ("a", "b"):
            cluster.add_node(name, cpus=NODE_CPUS, memory=NODE_MEMORY)
        for i, (mode, settings) in enumerate(modes.items()):
            extra = {"ray_address": cluster.address, "ray_namespace": f"bench-{i}"} if settings else {}
            with running_admin(Path(tmp) / f"admin-{i}", **settings, **extra) as admin:
                results[mode] = asyncio.run(measure(admin.url, args.sequential, args.burst))
            for pid_file in (Path(tmp) / f"admin-{i}" / "ray-nodes").glob("*/zygote.pid"):
                # stop_on_exit stopped them through the agents; a leftover would hold the next mode's CPU.
                with open(pid_file) as f, contextlib.suppress(OSError, ValueError):
                    os.kill(int(f.read()), 9)
    local = results["local"]
    for r in results.values():
        r["vs_local"] = {
            "sequential_p50": round(r["sequential"]["p50_ms"] / local["sequential"]["p50_ms"], 2),
            "creates_per_s": round(r["burst"]["creates_per_s"] / local["burst"]["creates_per_s"], 2),
        }
    print(
        f"\n{'mode':<22}{'cold ms':>9}{'seq p50':>9}{'seq p99':>9}{'burst p50':>10}{'burst p99':>10}"
        f"{'creates/s':>10}{'ok %':>6}{'p50 x':>7}{'tput x':>7}"
    )
    for mode, r in results.items():
        c, s, b = r["cold_start"], r["sequential"], r["burst"]
        print(
            f"{mode:<22}{c['p99_ms']:>9.0f}{s['p50_ms']:>9.1f}{s['p99_ms']:>9.1f}{b['p50_ms']:>10.1f}"
            f"{b['p99_ms']:>10.1f}{b['creates_per_s']:>10.1f}{b['success_rate'] * 100:>6.0f}"
            f"{r['vs_local']['sequential_p50']:>7.2f}{r['vs_local']['creates_per_s']:>7.2f}"
        )
    report = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "kernel": platform.release()},
        "cluster": {
            "head_cpus": 0,
            "workers": 2,
            "worker_cpus": NODE_CPUS,
            "worker_memory_gib": NODE_MEMORY // GIB,
        },
        "params": {"sequential": args.sequential, "burst": args.burst},
        "results": results,
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
