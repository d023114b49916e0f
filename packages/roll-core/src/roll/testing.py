"""Helpers for roll-core's tests and benchmarks: data-parallel ranks as processes on one machine. The trainer
never imports this module."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def launch_ranks(script: str, spec: dict, out_dir: str, timeout_s: float = 600) -> list[dict]:
    """Run `python script SPEC.json RANK` for every rank of `spec["world_size"]` (a free port for their
    process group and `out` added to the spec); each rank writes `<out>/rank<R>.pt`, returned in rank order.
    A rank that fails, or outlives `timeout_s`, raises RuntimeError with every rank's log tail."""
    import torch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = {**spec, "port": port, "out": out_dir}
    spec_path = os.path.join(out_dir, "spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    env = {**os.environ, "OMP_NUM_THREADS": str(spec.get("threads", 1)), "TOKENIZERS_PARALLELISM": "false"}
    logs = [open(os.path.join(out_dir, f"rank{r}.log"), "w") for r in range(spec["world_size"])]  # noqa: SIM115
    procs = [
        subprocess.Popen(
            [sys.executable, script, spec_path, str(r)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        for r, log in enumerate(logs)
    ]
    deadline = time.monotonic() + timeout_s
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()  # a rank that lost its peer waits on gloo forever
                p.wait()
        for log in logs:
            log.close()
    if any(p.returncode for p in procs):
        tails = [Path(out_dir, f"rank{r}.log").read_text()[-3000:] for r in range(len(procs))]
        raise RuntimeError(f"ranks exited {[p.returncode for p in procs]}:\n" + "\n---\n".join(tails))
    return [torch.load(os.path.join(out_dir, f"rank{r}.pt"), weights_only=False) for r in range(len(procs))]
