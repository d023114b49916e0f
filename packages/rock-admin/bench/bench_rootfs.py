"""The process runtime's sandbox root: what building it and living in it cost (needs root).

    python packages/rock-admin/bench/bench_rootfs.py [--against OTHER_CHECKOUT] [--rounds 3]

Per round, for this checkout (and, with `--against`, another checkout of the repo, e.g. a `git worktree` at an
older commit, run with its packages first on PYTHONPATH), alternately:
- `build_root_ms`: the zygote's `_build_root` in a fresh mount namespace (median of 30), no admin;
- `python_cpu_ms`, `bash_cpu_ms`: CPU time of `python3 -c 'import json'` / `bash -c true` inside that root
  (CPU time, not wall: robust on a busy machine);
- through a real admin (median of 20): `start_ms` (POST /start → running), `session_ms` (first bash session),
  `delete_ms` (stop + delete).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve()
PACKAGES = ("rock-admin", "rocklet", "rock-sdk", "gem-envs", "roll-core")


def _capture(into: dict) -> Callable[[dict], Awaitable[dict]]:
    """A stand-in for `ProcessRuntime._request` that keeps the payload `start()` makes."""

    async def request(payload: dict) -> dict:
        into.update(payload)
        return {"error": "captured"}

    return request


def _in_root(n: int) -> dict[str, float]:
    """Build `n` roots in forked children (each in a new mount namespace); time the last one's workloads."""
    from rock_admin.images import ImageStore
    from rock_admin.runtimes import linux, process, zygote
    from rock_admin.runtimes.base import Handle, SandboxSpec

    state = Path(tempfile.mkdtemp(prefix="bench-rootfs-", dir=HERE.parent))
    kwargs = {"userns": "off"} if "userns" in process.ProcessRuntime.__init__.__code__.co_varnames else {}
    runtime = process.ProcessRuntime(str(state), **kwargs)
    image = ImageStore(str(state)).get("python:3.11")
    builds: list[float] = []
    result: dict[str, float] = {}
    try:
        for i in range(n):
            spec = SandboxSpec(f"s{i}", image, 512 << 20, 1.0, 100, "t")
            payload: dict = {}
            runtime._request = _capture(payload)  # type: ignore[method-assign]  # start()'s payload, no zygote
            with contextlib.suppress(Exception):  # the captured "error"
                asyncio.run(runtime.start(spec))
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                linux.unshare(linux.CLONE_NEWNS)
                t = time.perf_counter()
                zygote._build_root(payload)
                out = {"build": time.perf_counter() - t}
                if i == n - 1:
                    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp"}
                    for name, cmd, k in (
                        ("python_cpu_ms", ["/usr/bin/python3", "-c", "import json"], 40),
                        ("bash_cpu_ms", ["/bin/bash", "-c", "true"], 200),
                    ):
                        subprocess.run(cmd, env=env, check=True)
                        before = resource.getrusage(resource.RUSAGE_CHILDREN)
                        for _ in range(k):
                            subprocess.run(cmd, env=env, check=True)
                        after = resource.getrusage(resource.RUSAGE_CHILDREN)
                        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
                        out[name] = round(cpu / k * 1000, 3)
                os.write(w, json.dumps(out).encode())
                os._exit(0)
            os.close(w)
            os.waitpid(pid, 0)
            reply = json.loads(os.read(r, 4096))
            os.close(r)
            builds.append(reply.pop("build"))
            result.update(reply)
            runtime.remove(Handle(sandbox_id=f"s{i}", sandbox_dir=str(runtime.sandboxes_dir / f"s{i}")))
    finally:
        subprocess.run(["umount", "-l", str(state / "masks")], capture_output=True)
        shutil.rmtree(state, ignore_errors=True)
    return {"build_root_ms": round(statistics.median(builds) * 1000, 3), **result}


def _through_admin(n: int) -> dict[str, float]:
    from rock_admin.testing import ok, running_admin

    phases: dict[str, list[float]] = {"start_ms": [], "session_ms": [], "delete_ms": []}
    with (
        tempfile.TemporaryDirectory(prefix="bench-rootfs-", dir=HERE.parent) as tmp,
        running_admin(Path(tmp) / "admin") as admin,
        admin.client() as http,
    ):
        for _ in range(n):
            t0 = time.perf_counter()
            sid = ok(http.post("/start", json={"image": "python:3.11", "memory": "512m", "cpus": 1}))[
                "sandbox_id"  # type: ignore[index]
            ]
            while ok(http.get("/get_status", params={"sandbox_id": sid}))["state"] != "running":  # type: ignore[index]
                time.sleep(0.001)
            t1 = time.perf_counter()
            ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
            t2 = time.perf_counter()
            http.post("/stop", json={"sandbox_id": sid})
            http.post("/delete", json={"sandbox_id": sid})
            t3 = time.perf_counter()
            for key, value in zip(phases, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                phases[key].append(value)
    return {k: round(statistics.median(v) * 1000, 2) for k, v in phases.items()}


def _measure() -> None:
    print(json.dumps({**_in_root(30), **_through_admin(20)}))


def _run(checkout: Path | None) -> dict[str, float]:
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = ":".join(str(checkout / "packages" / p / "src") for p in PACKAGES)
    out = subprocess.run(
        [sys.executable, str(HERE), "--measure"], env=env, capture_output=True, text=True, timeout=600
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--against", type=Path, help="another checkout of the repo to measure alternately")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        _measure()
        return
    rows = []
    for round_ in range(args.rounds):
        sides = [("this", None)] + ([("against", args.against.resolve())] if args.against else [])
        for name, checkout in sides if round_ % 2 == 0 else reversed(sides):
            rows.append({"round": round_ + 1, "tree": name, **_run(checkout)})
            print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
