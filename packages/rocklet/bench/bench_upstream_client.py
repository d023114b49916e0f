"""`/execute` and `run_in_session` through upstream ROCK's own client, our rocklet vs ROCK's rocklet, one run.

    python packages/rocklet/bench/bench_upstream_client.py --out bench-results/rocklet-upstream-client.json

The client is `rock.sandbox.remote_sandbox.RemoteSandboxRuntime` from the published `rl-rock==1.11.0`
(a new `requests` connection per call, in a thread, as upstream's SDK drives a rocklet), run by the peer venv
`.venv-peers/rock` (installed as in `bench_vs_peers.py` when missing; never the main venv, where `rock` is
ours). Both servers listen on TCP without an API key (upstream's runtime client sends none). Rounds alternate
between the two servers so a busy machine weighs on both alike; figures are medians over all rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _inner(ports: dict[str, int], rounds: int, n: int) -> dict[str, Any]:
    """Runs in the peer venv: upstream's client against every server, alternating rounds."""
    from rock.admin.proto.request import SandboxBashAction, SandboxCommand, SandboxCreateBashSessionRequest
    from rock.sandbox.remote_sandbox import RemoteSandboxRuntime

    async def main() -> dict[str, Any]:
        runtimes = {
            name: RemoteSandboxRuntime(host="http://127.0.0.1", port=port) for name, port in ports.items()
        }
        for runtime in runtimes.values():
            await runtime.create_session(
                SandboxCreateBashSessionRequest(session="bench", sandbox_id="bench", startup_timeout=10.0)
            )
        samples: dict[str, dict[str, list[float]]] = {k: {"execute": [], "run_in_session": []} for k in ports}
        command = SandboxCommand(command="echo hi", shell=True, sandbox_id="bench", timeout=30)
        action = SandboxBashAction(command="echo hi", session="bench", sandbox_id="bench", check="silent")
        for r in range(rounds + 1):  # round 0 warms up
            for name, runtime in runtimes.items():
                for _ in range(n):
                    t = time.perf_counter()
                    reply = await runtime.execute(command)
                    took = time.perf_counter() - t
                    if reply.stdout != "hi\n":
                        raise RuntimeError(f"{name} execute: {reply!r}")
                    if r:
                        samples[name]["execute"].append(took)
                for _ in range(n):
                    t = time.perf_counter()
                    obs = await runtime.run_in_session(action)
                    took = time.perf_counter() - t
                    if obs.output.strip() != "hi":
                        raise RuntimeError(f"{name} run_in_session: {obs!r}")
                    if r:
                        samples[name]["run_in_session"].append(took)
        return samples

    return asyncio.run(main())


def _ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    parser.add_argument("--inner", help=argparse.SUPPRESS)  # JSON {name: port}: the peer-venv side
    parser.add_argument("--rounds", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        Path(args.out).write_text(json.dumps(_inner(json.loads(args.inner), args.rounds, args.n)))
        return 0

    sys.path.insert(0, str(HERE))
    from bench_vs_peers import PEERS, Server, ensure_peer, free_port

    script, why = ensure_peer("rock")
    result: dict[str, Any] = {
        "benchmark": "rocklet_upstream_client",
        "client": "rl-rock 1.11.0 RemoteSandboxRuntime (requests, a connection per call)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if script is None:
        result["status"] = f"peer not installed: {why}"
        out.write_text(json.dumps(result, indent=2))
        print(result["status"])
        return 1
    rounds, n = (2, 20) if args.quick else (6, 50)
    workdir = Path(tempfile.mkdtemp(prefix="rocklet-bench-upstream-"))
    servers = {}
    for name, argv_ in (
        ("ours", [sys.executable, "-m", "rocklet", "--state-dir", str(workdir / "ours-state")]),
        ("rock", [str(script)]),
    ):
        port = free_port()
        servers[name] = Server(
            name, [*argv_, "--host", "127.0.0.1", "--port", str(port)], port, workdir / name, {}
        )
    try:
        for server in servers.values():
            server.start()
        raw = workdir / "samples.json"
        ports = json.dumps({name: s.port for name, s in servers.items()})
        inner = ["--inner", ports, "--rounds", str(rounds), "--n", str(n), "--out", str(raw)]
        subprocess.run(
            [str(script.parent / "python"), __file__, *inner],
            check=True,
            timeout=1200,
        )
        samples = json.loads(raw.read_text())
    finally:
        for server in servers.values():
            server.stop()
    systems = {
        name: {f"{call}_p50_ms": _ms(values) for call, values in calls.items()} | {"samples": rounds * n}
        for name, calls in samples.items()
    }
    systems["ours"]["label"] = "our rocklet 0.1.0"
    systems["rock"]["label"] = PEERS["rock"]["label"]
    ratios = {
        key: round(systems["rock"][key] / systems["ours"][key], 2)
        for key in systems["ours"]
        if key.endswith("_ms")
    }
    result |= {"status": "ok", "systems": systems, "ratio_rock_over_ours": ratios}
    print(f"{'metric':<26}{'ours':>10}{'rock':>10}{'rock/ours':>11}")
    for key, ratio in ratios.items():
        print(f"{key:<26}{systems['ours'][key]:>10}{systems['rock'][key]:>10}{ratio:>10}x")
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
