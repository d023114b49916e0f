"""ModelService benchmark: what intercepting an agent's LLM call costs, direct channel vs the file channel.

    python packages/rock-admin/bench/bench_model_service.py --out bench-results/model-service.json

Starts a real `rock-admin serve` (state under this package's `.scratch/`) and real sandboxes. In each, an
agent (plain Python + httpx, the sandbox's interpreter) makes chat calls one after another and times each; the
trainer (this script, the SDK) answers every request at once, so the agent's time per call is the
interception overhead alone (no generation). Figures:
- per-turn overhead p50/p99 seen by the agent: the direct channel (`answer_and_next`, one admin round trip per
  turn) and the file channel (upstream's road: a command in the sandbox writes the answer to the log and polls
  it for the next request), in the same run, and their ratio;
- N concurrent agent episodes (default 64) on this machine: turns/s in all, and the trainer's wait per turn
  (answer sent → next request in hand) p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from rock.sdk.sandbox.client import Sandbox
from rock.sdk.sandbox.config import SandboxConfig
from rock.sdk.sandbox.model_service import ModelServiceConfig, chat_completion
from rock_admin.testing import running_admin

AGENT = """
import json, os, sys, time
import httpx
url = os.environ["OPENAI_BASE_URL"] + "/chat/completions"
took = []
with httpx.Client(timeout=600) as http:
    for i in range(int(sys.argv[1])):
        t = time.perf_counter()
        r = http.post(url, json={"model": "policy", "messages": [{"role": "user", "content": f"turn {i}"}]})
        r.raise_for_status()
        took.append(time.perf_counter() - t)
print(json.dumps(took))
"""


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))] if s else float("nan")


def ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 50) * 1000, 2),
        "p99_ms": round(pct(values, 99) * 1000, 2),
    }


async def new_sandbox(url: str) -> Sandbox:
    sb = Sandbox(
        SandboxConfig(base_url=url, image="python:3.11", memory="512m", cpus=1, auto_clear_seconds=3600)
    )
    await sb.start()
    await sb.write_file_by_path(AGENT, "/tmp/turns_agent.py")
    return sb


async def episode(
    sb: Sandbox,
    turns: int,
    channel: str,
    waits: list[float] | None = None,
    arrivals: list[float] | None = None,
) -> list[float]:
    """Start the agent, answer its `turns` requests at once, return the agent's own per-call times; `waits`
    gets answer-sent → next-request times, `arrivals` the moments requests came in."""
    ms_ = sb.agent.model_service
    status = await ms_.start(ModelServiceConfig(request_timeout=600))
    run = await sb.agent.start(f"{status.python} /tmp/turns_agent.py {turns}")
    answer = chat_completion("ok")
    if channel == "direct":
        turn = await ms_.next_turn(timeout=600)
        while not turn.session_end:
            sent = time.perf_counter()
            turn = await ms_.answer_and_next(turn.index, answer, timeout=600)
            if waits is not None and arrivals is not None and not turn.session_end:
                waits.append(time.perf_counter() - sent)
                arrivals.append(time.perf_counter())
    else:
        text, index = await ms_.anti_call_llm(0, call_timeout=600, channel="file"), 0
        while text != "SESSION_END":
            index += 1
            text = await ms_.anti_call_llm(index, answer, call_timeout=600, channel="file")
    info = await sb.agent.wait(run, timeout=120)
    out = await sb.process_output(run.process_id)
    if info.exit_code != 0:
        raise RuntimeError(f"the agent failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


async def bench(
    url: str, turns: int, file_turns: int, concurrent: int, concurrent_turns: int
) -> dict[str, Any]:
    sb = await new_sandbox(url)
    await episode(sb, 3, "direct")  # warm: imports, connections
    direct = (await episode(sb, turns, "direct"))[1:]  # the first call also pays the agent's connect
    file_ = (await episode(sb, file_turns, "file"))[1:]
    await sb.close()
    out: dict[str, Any] = {
        "per_turn_overhead": {
            "direct": ms(direct),
            "file": ms(file_),
            "file_over_direct_p50": round(pct(file_, 50) / pct(direct, 50), 1),
        }
    }
    sandboxes = await asyncio.gather(*(new_sandbox(url) for _ in range(concurrent)))
    waits: list[float] = []
    arrivals: list[float] = []
    started = time.perf_counter()
    per_agent = await asyncio.gather(
        *(episode(s, concurrent_turns, "direct", waits, arrivals) for s in sandboxes)
    )
    wall = time.perf_counter() - started
    done = sum(len(a) for a in per_agent)
    out["concurrent"] = {
        "episodes": concurrent,
        "turns_each": concurrent_turns,
        # turns answered per second once every agent runs (its interpreter start is not a turn's cost)
        "turns_per_s": round((len(arrivals) - 1) / (max(arrivals) - min(arrivals)), 1),
        "turns_per_s_incl_agent_start": round(done / wall, 1),
        "wall_s": round(wall, 2),
        "trainer_wait_per_turn": ms(waits),
        "agent_seen_per_turn": ms([t for a in per_agent for t in a]),
    }
    await asyncio.gather(*(s.close() for s in sandboxes))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=None)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--file-turns", type=int, default=40)
    parser.add_argument("--concurrent", type=int, default=64)
    parser.add_argument("--concurrent-turns", type=int, default=10)
    args = parser.parse_args()
    scratch = Path(__file__).resolve().parent.parent / ".scratch"
    scratch.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as state, running_admin(Path(state)) as admin:
        result = asyncio.run(
            bench(admin.url, args.turns, args.file_turns, args.concurrent, args.concurrent_turns)
        )
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
