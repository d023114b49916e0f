"""rock-admin cluster benchmark: many sandboxes, many commands through read nodes, and faults under load.

    python packages/rock-admin/bench/bench_cluster.py --out bench-results/rock-admin-cluster.json
    ROCK_LOAD_SANDBOXES=50 python packages/rock-admin/bench/bench_cluster.py --faults   # small, while iterating

Starts a write node and two read nodes (`rock-admin serve --role read`, one process per port) on one state dir
(SQLite, or `--store redis` with a private redis-server), then:
1. creates `--sandboxes` sandboxes (process runtime) through the write node, `--concurrency` at a time, and
   checks every one reaches `running`;
2. sends `--commands` commands (`echo $HOSTNAME SEQ` in a bash session, no fork) spread over the sandboxes and both
   read nodes: a reply must carry the target sandbox's hostname (else misrouted) and the command's number;
   a command that gets no reply is retried on the other read node (this client's job; raw HTTP clients have
   no SDK to do it), and lost only when every try fails;
3. compares the command round trip through 1 vs 2 read nodes, and straight through the write node (the peer:
   no read tier), on the same sandboxes in the same run, under load (`--concurrency` in flight) and one at a
   time (the hop's own cost);
4. with `--faults`: kill -9 a read node mid-load (nothing may be lost), kill a rocklet (time until a read
   node reports its sandbox failed), kill -9 the write node and restart it (every sandbox still reachable),
   and with `--store redis` restart Redis (the admins reconnect).
Prints a table and writes JSON (`--out`). Everything it started is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from rock_admin.testing import PREFIX, Admin, Redis, running_admin, running_redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_admin import summary

START_BODY = {"image": "python:3.11", "memory": "256m", "cpus": 0.5, "auto_clear_seconds": 0}
TRIES = 5
SESSION_STARTUP = 60.0


class Driver:
    """The load's client: one keep-alive HTTP client per node, a lock per sandbox (one bash session each)."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.clients: dict[str, httpx.AsyncClient] = {}
        self.locks: dict[str, asyncio.Lock] = {}

    def http(self, url: str) -> httpx.AsyncClient:
        if url not in self.clients:
            self.clients[url] = httpx.AsyncClient(
                base_url=url + PREFIX,
                timeout=httpx.Timeout(120.0, connect=5.0),
                limits=httpx.Limits(
                    max_connections=self.concurrency, max_keepalive_connections=self.concurrency
                ),
            )
        return self.clients[url]

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def create(self, url: str, n: int) -> tuple[list[str], list[float], list[str]]:
        sids: list[str] = []
        latencies: list[float] = []
        errors: list[str] = []
        slots = asyncio.Semaphore(self.concurrency)

        async def one() -> None:
            async with slots:
                started = time.perf_counter()
                reply = (await self.http(url).post("/start", json=START_BODY)).json()
                if reply["status"] == "Success":
                    sids.append(reply["result"]["sandbox_id"])
                    latencies.append(time.perf_counter() - started)
                else:
                    errors.append(reply["message"])

        await asyncio.gather(*(one() for _ in range(n)))
        return sids, latencies, errors

    async def sessions(self, urls: list[str], sids: list[str]) -> list[str]:
        slots = asyncio.Semaphore(self.concurrency)
        errors: list[str] = []

        async def one(i: int, sid: str) -> None:
            # A shell may take seconds to show its prompt on a loaded machine: wait for it (bash's default is 1 s).
            body = {"sandbox_id": sid, "session": "load", "startup_timeout": SESSION_STARTUP}
            async with slots:
                reply = (await self.http(urls[i % len(urls)]).post("/create_session", json=body)).json()
                if reply["status"] != "Success":
                    errors.append(reply["message"])

        await asyncio.gather(*(one(i, sid) for i, sid in enumerate(sids)))
        return errors

    async def commands(
        self, urls: list[str], sids: list[str], n: int, on_progress: Any = None
    ) -> dict[str, Any]:
        """`n` commands over `sids` and `urls`, `concurrency` in flight; each checked for its sandbox and number."""
        urls = list(urls)
        latencies: list[float] = []
        counts = {"ok": 0, "lost": 0, "misrouted": 0, "retries": 0}
        errors: list[str] = []
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n):
            queue.put_nowait(i)

        async def send(i: int) -> None:
            sid = sids[i % len(sids)]
            body = {"sandbox_id": sid, "session": "load", "command": f"echo $HOSTNAME {i}", "check": "silent"}
            lock = self.locks.setdefault(sid, asyncio.Lock())
            async with lock:  # one bash session per sandbox: its commands go one at a time
                started = time.perf_counter()  # the round trip (retries included), not the wait for the lock
                for attempt in range(TRIES):
                    url = urls[(i + attempt) % len(urls)]  # a retry goes to the next read node
                    try:
                        reply = (await self.http(url).post("/run_in_session", json=body)).json()
                    except httpx.TransportError as exc:
                        counts["retries"] += 1
                        if len(errors) < 5:
                            errors.append(f"{url}: {type(exc).__name__}: {exc}")
                        await asyncio.sleep(0.05)
                        continue
                    break
                else:
                    counts["lost"] += 1
                    return
            latencies.append(time.perf_counter() - started)
            if reply["status"] != "Success":
                counts["lost"] += 1
                if len(errors) < 5:
                    errors.append(reply["message"])
                return
            host, _, seq = reply["result"]["output"].strip().partition(" ")
            if host != sid[:63] or seq != str(i):
                counts["misrouted"] += 1
            else:
                counts["ok"] += 1

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                await send(i)
                if on_progress is not None:
                    on_progress(n - queue.qsize())

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        wall = time.perf_counter() - started
        return {
            **counts,
            **summary(latencies),
            "per_s": round(n / wall, 1),
            "wall_s": round(wall, 2),
            "errors": errors,
        }


def _rocklet_pid(init_pid: int) -> int:
    with open(f"/proc/{init_pid}/task/{init_pid}/children") as f:
        return int(f.read().split()[0])


async def _status(driver: Driver, url: str, sid: str) -> dict[str, Any]:
    params = {"sandbox_id": sid, "include_all_states": "true"}
    return (await driver.http(url).get("/get_status", params=params)).json()["result"]


async def faults(
    driver: Driver, write: Admin, reads: list[Admin], sids: list[str], n: int, redis: Redis | None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    r1, r2 = reads
    killed = asyncio.Event()

    def progress(done: int) -> None:
        if done >= n // 3 and not killed.is_set():
            killed.set()
            os.kill(r2.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]

    out["read_node_kill9"] = await driver.commands([r1.url, r2.url], sids, n, progress)

    victim = sids[0]
    init = (await _status(driver, r1.url, victim))["metadata"]["pid"]
    started = time.perf_counter()
    os.kill(_rocklet_pid(init), signal.SIGKILL)
    while (await _status(driver, r1.url, victim))["state"] != "stopped":  # failed (upstream's states)
        if time.perf_counter() - started > 30:
            break
        await asyncio.sleep(0.005)
    out["rocklet_kill"] = {
        "reported_failed_after_s": round(time.perf_counter() - started, 3),
        "state": (await _status(driver, r1.url, victim))["state"],
    }

    alive = sids[1:]
    write.kill9()
    started = time.perf_counter()
    await asyncio.to_thread(write.start)
    restart_s = time.perf_counter() - started
    reach = await driver.commands([r1.url], alive, len(alive))
    states = await asyncio.gather(*(_status(driver, r1.url, sid) for sid in alive))
    out["write_node_kill9"] = {
        "restart_to_serving_s": round(restart_s, 2),
        "running_after": sum(s["state"] == "running" for s in states),
        "of": len(alive),
        "reached": reach["ok"],
        "lost": reach["lost"],
        "misrouted": reach["misrouted"],
    }

    if redis is not None:
        redis.restart()
        created, _, errors = await driver.create(r1.url, 1)  # through the read node: write node → Redis
        after = await _status(driver, r1.url, created[0]) if created else {"state": "none"}
        out["redis_restart"] = {"start_after_restart": after["state"], "errors": errors}
    return out


@contextlib.contextmanager
def cluster(state: Path, store: str) -> Iterator[tuple[Admin, list[Admin], Redis | None]]:
    with contextlib.ExitStack() as stack:
        redis = None
        # 1,000 sandboxes within the pids budget of a host whose pid_max is 32768 (an idle one holds 2-3)
        settings: dict[str, str] = {"store": store, "auto_stop_interval": "5", "pids_max": "24"}
        if store == "redis":
            redis = stack.enter_context(running_redis(state / "redis"))
            settings["redis_url"] = redis.url
        write = stack.enter_context(running_admin(state / "admin", role="write", **settings))
        reads = [
            stack.enter_context(running_admin(state / "admin", role="read", write_url=write.url, **settings))
            for _ in range(2)
        ]
        yield write, reads, redis


async def _compare(
    driver: Driver, write: Admin, reads: list[Admin], sids: list[str], n: int
) -> dict[str, Any]:
    """The same commands through 1 read node, 2 read nodes, and the write node itself (no read tier)."""
    return {
        "1_read_node": await driver.commands([reads[0].url], sids, n),
        "2_read_nodes": await driver.commands([r.url for r in reads], sids, n),
        "write_node_direct": await driver.commands([write.url], sids, n),
    }


async def run(
    args: argparse.Namespace, write: Admin, reads: list[Admin], redis: Redis | None
) -> dict[str, Any]:
    driver = Driver(args.concurrency)
    try:
        results: dict[str, Any] = {}
        started = time.perf_counter()
        sids, latencies, errors = await driver.create(write.url, args.sandboxes)
        wall = time.perf_counter() - started
        listed = (
            await driver.http(reads[0].url).get("/sandboxes", params={"state": "running", "page_size": 10000})
        ).json()["result"]
        running = {item["sandbox_id"] for item in listed["items"]}
        results["create"] = {
            **summary(latencies),
            "asked": args.sandboxes,
            "created": len(sids),
            "running": len(running & set(sids)),
            "wall_s": round(wall, 2),
            "per_s": round(len(sids) / wall, 1),
            "errors": errors[:5],
        }
        session_errors = await driver.sessions([r.url for r in reads], sids)
        results["sessions"] = {"created": len(sids) - len(session_errors), "errors": session_errors[:5]}
        results["load_2_read_nodes"] = await driver.commands([r.url for r in reads], sids, args.commands)
        compare = min(args.compare_commands, args.commands)
        results["compare"] = await _compare(driver, write, reads, sids, compare)
        one_at_a_time = Driver(1)  # the hop's own cost, without queueing behind other commands
        try:
            results["compare_sequential"] = await _compare(one_at_a_time, write, reads, sids, compare // 4)
        finally:
            await one_at_a_time.aclose()
        if args.faults:
            results["faults"] = await faults(driver, write, reads, sids, args.fault_commands, redis)
        return results
    finally:
        await driver.aclose()


def table(results: dict[str, Any]) -> str:
    rows = [("figure", "result")]
    c = results["create"]
    rows.append(
        (
            f"create {c['asked']} sandboxes",
            f"{c['running']} running, p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms, {c['per_s']}/s",
        )
    )

    def load(name: str, r: dict[str, Any]) -> None:
        rows.append(
            (
                name,
                f"{r['ok']}/{r['n']} ok, lost {r['lost']}, misrouted {r['misrouted']}, retries {r['retries']}, "
                f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, {r['per_s']}/s",
            )
        )

    load("commands via 2 read nodes", results["load_2_read_nodes"])
    for group in ("compare", "compare_sequential"):
        for name, r in results[group].items():
            load(f"{group}: {name}", r)
    f = results.get("faults")
    if f:
        load("kill -9 a read node mid-load", f["read_node_kill9"])
        rows.append(
            (
                "kill a rocklet",
                f"{f['rocklet_kill']['state']} after {f['rocklet_kill']['reported_failed_after_s']} s",
            )
        )
        w = f["write_node_kill9"]
        rows.append(
            (
                "kill -9 + restart the write node",
                f"back in {w['restart_to_serving_s']} s, {w['running_after']}/{w['of']} running, "
                f"{w['reached']} reached, lost {w['lost']}",
            )
        )
        if "redis_restart" in f:
            rows.append(
                ("restart Redis", f"a new sandbox after it: {f['redis_restart']['start_after_restart']}")
            )
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"| {a:<{width}} | {b} |" for a, b in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_n = int(os.environ.get("ROCK_LOAD_SANDBOXES", "1000"))
    parser.add_argument(
        "--sandboxes", type=int, default=default_n, help="default $ROCK_LOAD_SANDBOXES or 1000"
    )
    parser.add_argument("--commands", type=int, default=None, help="default 10 per sandbox")
    parser.add_argument("--compare-commands", type=int, default=2000)
    parser.add_argument("--fault-commands", type=int, default=None, help="default 2 per sandbox")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument(
        "--faults", action="store_true", help="also kill a read node, a rocklet, the write node"
    )
    parser.add_argument(
        "--state-dir", default=None, help="default: a temp dir under this package's .scratch/"
    )
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.sandboxes < 1:
        parser.error("--sandboxes must be >= 1")
    args.commands = args.commands or 10 * args.sandboxes
    args.fault_commands = args.fault_commands or 2 * args.sandboxes
    scratch = Path(__file__).resolve().parent.parent / ".scratch"
    scratch.mkdir(exist_ok=True)
    state = Path(args.state_dir or tempfile.mkdtemp(prefix="cluster-", dir=scratch))
    with cluster(state, args.store) as (write, reads, redis):
        results = asyncio.run(run(args, write, reads, redis))
    report = {
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "load_avg_start": os.getloadavg(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "results": results,
    }
    print(table(results))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
