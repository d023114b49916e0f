"""rock-admin benchmark: what the user namespace costs a sandbox start (process runtime, needs root).

    python packages/rock-admin/bench/bench_userns.py --n 30 --out bench-results/userns.json

Two real admins in one run, `userns: off` (sandbox root is host root, as before) and `userns: auto` (a user
namespace with id-mapped layers), alternated `--rounds` times so that a busy machine weighs on both alike.
Per admin: POST /start (the admin answers once the rocklet is alive) sequentially `--n` times after one warm
start, each sandbox stopped and deleted before the next. Figures: p50/p90 per mode, and auto/off of the p50s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from rock_admin.testing import running_admin, start_sandbox


def starts(state_dir: Path, userns: str, n: int) -> list[float]:
    with running_admin(state_dir, userns=userns) as admin, admin.client() as http:
        start_sandbox(http)  # the zygote's first fork and the image's mask
        times = []
        for _ in range(n):
            t = time.perf_counter()
            sid = start_sandbox(http)
            times.append((time.perf_counter() - t) * 1000)
            http.post("/stop", json={"sandbox_id": sid})
            http.post("/delete", json={"sandbox_id": sid})
        return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=30, help="starts per admin and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    scratch = Path(__file__).resolve().parents[1] / ".scratch"
    scratch.mkdir(exist_ok=True)
    samples: dict[str, list[float]] = {"off": [], "auto": []}
    with tempfile.TemporaryDirectory(dir=scratch, prefix="bench-userns-") as tmp:
        for i in range(args.rounds):
            for mode in samples:
                samples[mode] += starts(Path(tmp) / f"{mode}-{i}", mode, args.n)
    result = {
        mode: {
            "p50_ms": round(statistics.median(ts), 1),
            "p90_ms": round(sorted(ts)[int(len(ts) * 0.9)], 1),
            "n": len(ts),
        }
        for mode, ts in samples.items()
    }
    result["auto_over_off_p50"] = round(result["auto"]["p50_ms"] / result["off"]["p50_ms"], 2)  # type: ignore[index]
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
