"""The admin's hop to a rocklet: `/execute` (`echo hi`) through `service.rawhttp.RawPool` (what the data plane
uses) and through a persistent, pooled HTTP/1.1 `httpx.AsyncClient`, over the rocklet's Unix socket as the
admin dials it, alternated call by call in one run so both see the same machine.

    python packages/rock-admin/bench/bench_upstream_client.py --n 300 --out bench-results/upstream-client.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from pathlib import Path

import httpx

from rock_admin.runtimes.base import Endpoint
from rock_admin.service.rawhttp import RawPool
from rocklet.testing import running_rocklet

BODY = b'{"command": "echo hi", "shell": true, "timeout": 10}'


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 50) * 1e3, 3),
        "p90_ms": round(pct(values, 90) * 1e3, 3),
    }


async def bench(uds: str, token: str, n: int, warmup: int) -> dict[str, object]:
    raw = RawPool(Endpoint(uds=uds), token, 16)
    client = httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(uds=uds, http1=True, http2=False),
        base_url="http://rocklet",
        headers={"X-API-Key": token, "Content-Type": "application/json"},
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
    )

    async def via_raw() -> bytes:
        return await raw.post("/execute", BODY)

    async def via_httpx() -> bytes:
        reply = await client.post("/execute", content=BODY)
        reply.raise_for_status()
        return reply.content

    times: dict[str, list[float]] = {"rawhttp": [], "httpx": []}
    try:
        for i in range(warmup + n):
            for name, call in (("rawhttp", via_raw), ("httpx", via_httpx))[:: 1 if i % 2 else -1]:
                t = time.perf_counter()
                out = await call()
                elapsed = time.perf_counter() - t
                assert b'"stdout":"hi\\n"' in out, out
                if i >= warmup:
                    times[name].append(elapsed)
    finally:
        raw.close()
        await client.aclose()
    result: dict[str, object] = {name: summary(values) for name, values in times.items()}
    raw_p50 = pct(times["rawhttp"], 50)
    result["httpx_over_rawhttp_p50"] = round(pct(times["httpx"], 50) / raw_p50, 3)
    result["httpx_over_rawhttp_p90"] = round(pct(times["httpx"], 90) / pct(times["rawhttp"], 90), 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="measured calls per client")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    scratch = Path(__file__).resolve().parents[1] / ".scratch"
    scratch.mkdir(exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="bench-", dir=scratch) as tmp,
        running_rocklet(Path(tmp), token="bench-token", uds=True) as rocklet,
    ):
        assert rocklet.uds is not None
        result = asyncio.run(bench(rocklet.uds, rocklet.token, args.n, args.warmup))
    result["machine"] = {
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
