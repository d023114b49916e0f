"""rock-admin benchmark: sandbox start, command round trip, memory per idle sandbox, GEM over HTTP.

    python packages/rock-admin/bench/bench_admin.py --out bench-results/rock-admin.json

Starts a real `rock-admin serve` (state in a temp dir under this package's `.scratch/`), drives it through
the SDK (`rock.sdk.sandbox.client.Sandbox`, `rock.make`-style HTTP) and stops everything by PID at the end.
Figures:
- create → first `echo` through the SDK, sequential (p50/p99) and N at once (p50/p99, success, wall);
- `echo` round trip in an existing session through the admin, and straight to the rocklet's socket (the
  difference is what the admin adds);
- memory per idle sandbox (rocklet + init + one bash session): USS and PSS summed over its processes, and the
  drop in the host's MemAvailable, with how many idle sandboxes would fit in what is available;
- GEM (Sokoban easy) over HTTP: reset/step p50 in sandbox mode, aggregate steps/s with many envs pooled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from rock.actions import BashAction, CreateBashSessionRequest
from rock.rocklet_client import RockletClient
from rock.sdk.sandbox.client import Sandbox
from rock.sdk.sandbox.config import SandboxConfig
from rock_admin.service.tokens import TokenKey
from rock_admin.testing import running_admin


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 50) * 1000, 2),
        "p99_ms": round(pct(values, 99) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2) if values else float("nan"),
    }


def cfg(url: str) -> SandboxConfig:
    return SandboxConfig(base_url=url, image="python:3.11", memory="512m", cpus=1, auto_clear_seconds=3600)


async def create_and_echo(url: str) -> tuple[float, Sandbox | None, str]:
    sb = Sandbox(cfg(url))
    t = time.perf_counter()
    try:
        await sb.start()
        obs = await sb.arun("echo hi")
        elapsed = time.perf_counter() - t
        return (
            (elapsed, sb, "") if obs.output.strip() == "hi" else (elapsed, sb, f"bad output {obs.output!r}")
        )
    except Exception as exc:
        return time.perf_counter() - t, sb, f"{type(exc).__name__}: {exc}"


async def bench_sequential(url: str, n: int) -> dict[str, Any]:
    times = []
    for _ in range(n):
        elapsed, sb, err = await create_and_echo(url)
        if err:
            raise RuntimeError(err)
        times.append(elapsed)
        await sb.close()  # type: ignore[union-attr]
    return summary(times)


def _cpu_ms(pid: int) -> float:
    """CPU time of every thread of `pid` (ns precision), in ms; 0 once it is gone."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return total / 1e6


def _cpu_by_role(admin_pid: int, before: dict[int, float]) -> dict[str, float]:
    """CPU (ms) since `before` of the admin, its zygote and the sandboxes' processes by role (the zygote's
    children are the sandboxes' inits, theirs the rocklets, theirs the bash sessions and what those run).
    Processes that exited meanwhile are not counted."""
    roles: dict[str, float] = {}

    def add(role: str, pid: int) -> None:
        roles[role] = roles.get(role, 0.0) + _cpu_ms(pid) - before.get(pid, 0.0)

    add("admin", admin_pid)
    for zygote in _children(admin_pid):
        add("zygote" if zygote in before else "admin's other children", zygote)
        for init in _children(zygote) - set(before):
            add("init", init)
            for rocklet in _children(init):
                add("rocklet", rocklet)
                for pid in {p for bash in _children(rocklet) for p in _descendants(bash)}:
                    add("bash", pid)
    return roles


def _children(pid: int) -> set[int]:
    kids: set[int] = set()
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            kids |= {int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()}
    return kids


async def bench_burst(url: str, n: int, admin_pid: int) -> dict[str, Any]:
    """n creates at once; also the CPU each sandbox cost (the burst is CPU-bound: on an idle machine its wall
    time is about that total over the cores), by process role, which a busy machine does not skew."""
    before = {pid: _cpu_ms(pid) for pid in _descendants(admin_pid)}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    results = await asyncio.gather(*(create_and_echo(url) for _ in range(n)))
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_SELF)
    roles = _cpu_by_role(admin_pid, before)
    roles["client"] = (after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime) * 1000
    ok = [r[0] for r in results if not r[2]]
    errors = [r[2] for r in results if r[2]]
    await asyncio.gather(*(r[1].close() for r in results if r[1] is not None), return_exceptions=True)
    per_sandbox = {role: round(ms / n, 2) for role, ms in sorted(roles.items(), key=lambda kv: -kv[1])}
    return {
        **summary(ok),
        "wall_s": round(wall, 3),
        "success_rate": len(ok) / n,
        "errors": errors[:5],
        "cpu_ms_per_sandbox": {"total": round(sum(roles.values()) / n, 2), **per_sandbox},
        "idle_wall_estimate_s": round(sum(roles.values()) / 1000 / (os.cpu_count() or 1), 2),
    }


async def bench_rtt(url: str, n: int) -> dict[str, Any]:
    sb = Sandbox(cfg(url))
    await sb.start()
    await sb.create_session(CreateBashSessionRequest(session="s"))
    for _ in range(20):
        await sb.arun("echo hi", session="s")
    via_admin = []
    for _ in range(n):
        t = time.perf_counter()
        await sb.arun("echo hi", session="s")
        via_admin.append(time.perf_counter() - t)
    status = await sb.get_status()
    direct = []
    uds, token = status.metadata.get("uds"), None
    # The test-only path: the rocklet's socket and token live in the admin's store.
    import sqlite3

    state_dir = Path(uds).parents[3]
    with sqlite3.connect(state_dir / "rock-admin.db") as conn:
        record = json.loads(
            conn.execute("SELECT record FROM sandboxes WHERE sandbox_id=?", (sb.sandbox_id,)).fetchone()[0]
        )
    # The store keeps only a nonce: the token is derived from the admin's key, as the admin derives it.
    token = TokenKey.from_file(str(state_dir / "rocklet-token.key")).token(record)
    from rock_admin.runtimes.process import short_path

    async with RockletClient(uds=short_path(uds), auth_token=token) as rocklet:
        for _ in range(20):
            await rocklet.run_in_session(BashAction(command="echo hi", session="s"))
        for _ in range(n):
            t = time.perf_counter()
            await rocklet.run_in_session(BashAction(command="echo hi", session="s"))
            direct.append(time.perf_counter() - t)
    await sb.close()
    a, d = summary(via_admin), summary(direct)
    return {
        "via_admin": a,
        "direct_rocklet": d,
        "admin_overhead_p50_ms": round(a["p50_ms"] - d["p50_ms"], 2),
        "ratio_p50": round(a["p50_ms"] / d["p50_ms"], 2),
    }


def _mem(pid: int) -> tuple[int, int]:
    uss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, value = line.partition(":")
            kb = int(value.split()[0]) * 1024 if value.split() else 0
            if key == "Pss":
                pss = kb
            elif key in ("Private_Clean", "Private_Dirty"):
                uss += kb
    except (OSError, ValueError):
        pass
    return uss, pss


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{tid}/children").read_text().split()]
        except OSError:
            pass
    return out


def _available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


async def bench_memory(url: str, n: int) -> dict[str, Any]:
    before = _available()
    boxes = []
    for _ in range(n):
        sb = Sandbox(cfg(url))
        await sb.start()
        await sb.create_session(CreateBashSessionRequest(session="s"))
        await sb.arun("echo ready", session="s")
        boxes.append(sb)
    await asyncio.sleep(1.0)
    after = _available()
    uss_total = pss_total = 0
    for sb in boxes:
        pid = (await sb.get_status()).metadata["pid"]
        for p in _descendants(pid):
            uss, pss = _mem(p)
            uss_total += uss
            pss_total += pss
    await asyncio.gather(*(sb.close() for sb in boxes))
    mib = 1024 * 1024
    per_avail = (before - after) / n
    return {
        "sandboxes": n,
        "uss_mib_per_sandbox": round(uss_total / n / mib, 2),
        "pss_mib_per_sandbox": round(pss_total / n / mib, 2),
        "memavailable_drop_mib_per_sandbox": round(per_avail / mib, 2),
        "host_memavailable_gib": round(before / mib / 1024, 2),
        "idle_sandboxes_that_fit": int(before / max(per_avail, pss_total / n, 1)),
    }


async def raw_post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: dict) -> Any:
    data = json.dumps(body).encode()
    writer.write(
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data
    )
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    payload = await reader.readexactly(length)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{path}: {head.splitlines()[0]!r} {payload[:200]!r}")
    return json.loads(payload)


async def bench_gem(url: str, steps: int, pooled_envs: int, pooled_seconds: float) -> dict[str, Any]:
    gem = f"{url}/apis/v1/envs/gem"
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=pooled_envs + 8)) as http:
        env = (await http.post(f"{gem}/make", json={"env_id": "game:Sokoban-v0-easy"})).json()["sandbox_id"]
        resets, step_times = [], []
        for i in range(max(20, steps // 10)):
            t = time.perf_counter()
            r = await http.post(f"{gem}/reset", json={"sandbox_id": env, "seed": i})
            resets.append(time.perf_counter() - t)
            r.raise_for_status()
        actions = ["\\boxed{up}", "\\boxed{down}", "\\boxed{left}", "\\boxed{right}"]
        for i in range(steps):
            t = time.perf_counter()
            r = (await http.post(f"{gem}/step", json={"sandbox_id": env, "action": actions[i % 4]})).json()
            step_times.append(time.perf_counter() - t)
            if r["terminated"] or r["truncated"]:
                await http.post(f"{gem}/reset", json={"sandbox_id": env, "seed": i})
        await http.post(f"{gem}/close", json={"sandbox_id": env})

        envs = await asyncio.gather(
            *(
                http.post(f"{gem}/make", json={"env_id": "game:Sokoban-v0-easy", "mode": "pooled"})
                for _ in range(pooled_envs)
            )
        )
        ids = [e.json()["sandbox_id"] for e in envs]
        await asyncio.gather(*(http.post(f"{gem}/reset", json={"sandbox_id": e, "seed": 1}) for e in ids))
        # The aggregate part uses a minimal keep-alive HTTP/1.1 client (one connection per env): with
        # hundreds of connections httpx's own cost per request would dominate and measure the client.
        count = 0
        stop_at = time.perf_counter() + pooled_seconds
        host, port = url.split("//", 1)[1].split(":")

        async def worker(e: str, k: int) -> None:
            nonlocal count
            reader, writer = await asyncio.open_connection(host, int(port))
            i = k
            try:
                while time.perf_counter() < stop_at:
                    r = await raw_post(
                        reader, writer, "/apis/v1/envs/gem/step", {"sandbox_id": e, "action": actions[i % 4]}
                    )
                    count += 1
                    i += 1
                    if r["terminated"] or r["truncated"]:
                        await raw_post(
                            reader, writer, "/apis/v1/envs/gem/reset", {"sandbox_id": e, "seed": i}
                        )
            finally:
                writer.close()

        t = time.perf_counter()
        await asyncio.gather(*(worker(e, k) for k, e in enumerate(ids)))
        elapsed = time.perf_counter() - t
        await asyncio.gather(*(http.post(f"{gem}/close", json={"sandbox_id": e}) for e in ids))
    return {
        "reset": summary(resets),
        "step": summary(step_times),
        "pooled_envs": pooled_envs,
        "pooled_steps_per_s": round(count / elapsed, 1),
    }


async def main_async(args: argparse.Namespace, url: str, admin_pid: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    print("sequential create→echo ...", flush=True)
    results["create_to_first_echo_sequential"] = await bench_sequential(url, args.sequential)
    print("burst ...", flush=True)
    burst = await bench_burst(url, args.burst, admin_pid)
    results["create_to_first_echo_burst"] = {"concurrency": args.burst, **burst}
    print("command round trip ...", flush=True)
    results["echo_rtt"] = await bench_rtt(url, args.rtt)
    print("memory ...", flush=True)
    results["memory_idle"] = await bench_memory(url, args.memory)
    print("gem ...", flush=True)
    results["gem_sokoban_easy"] = await bench_gem(url, args.gem_steps, args.pooled_envs, args.pooled_seconds)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--sequential", type=int, default=50)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--rtt", type=int, default=500)
    parser.add_argument("--memory", type=int, default=50, help="idle sandboxes to measure")
    parser.add_argument("--gem-steps", type=int, default=500)
    parser.add_argument("--pooled-envs", type=int, default=256)
    parser.add_argument("--pooled-seconds", type=float, default=5.0)
    args = parser.parse_args()
    scratch = Path(__file__).resolve().parents[1] / ".scratch"
    scratch.mkdir(exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="bench-", dir=scratch) as tmp,
        running_admin(Path(tmp) / "admin") as admin,
    ):
        assert admin.proc is not None
        results = asyncio.run(main_async(args, admin.url, admin.proc.pid))
    report = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "kernel": platform.release()},
        "targets": {
            "create_to_first_echo_sequential": "p50 <= 50 ms, p99 <= 150 ms",
            "create_to_first_echo_burst": "100 at once: p99 <= 1.5 s, 100% success",
            "echo_rtt": "via admin p50 <= 3 ms, p99 <= 10 ms",
            "gem_sokoban_easy": "reset p50 <= 10 ms, step p50 <= 3 ms, >= 3000 steps/s pooled (256 envs)",
        },
        **results,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
