"""`python -m rocklet.model_service anti-call-llm --index N [--response JSON | --response-file F]`: the file
channel's in-sandbox client, as upstream's `rock model-service anti-call-llm`.

Index 0 waits for the first request; index N > 0 first writes the answer to request N (once), then waits for
request N + 1. It prints that request's JSON, or `SESSION_END` once the agent has exited. Everything goes
through the log file, polled every 0.1 s: the slow path the direct channel (`/model_service/anti_call`) beats.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rock.actions import SESSION_END
from rocklet.model_service.logfile import LogReader, response_line

POLL_S = 0.1


def anti_call(log_file: Path, index: int, response: dict | None, timeout: float) -> str:
    reader = LogReader(log_file)
    lines = reader.new_lines()
    answered = any(line.kind == "response" and line.index == index for line in lines)
    if index > 0 and response is not None and not answered:
        with log_file.open("a", encoding="utf-8") as f:
            f.write(response_line(index, response))
    deadline = time.monotonic() + timeout
    while True:
        for line in lines:
            if line.kind == "request" and line.index == index + 1:
                return json.dumps(line.body, ensure_ascii=False)
            if line.kind == "end":
                return SESSION_END
        if time.monotonic() > deadline:
            raise TimeoutError(f"no request {index + 1} in {timeout:g} s")
        time.sleep(POLL_S)
        lines = reader.new_lines()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rocklet.model_service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    call = sub.add_parser("anti-call-llm", help="answer request N and wait for request N+1")
    call.add_argument("--index", type=int, required=True)
    given = call.add_mutually_exclusive_group()
    given.add_argument("--response", help="the answer to request INDEX, as JSON")
    given.add_argument("--response-file", help="a file holding the answer's JSON")
    call.add_argument(
        "--log-file", required=True, help="the service's LLMService.log (its status says where)"
    )
    call.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    if args.index < 0:
        parser.error("--index: must be >= 0")
    text = args.response
    if args.response_file:
        text = Path(args.response_file).read_text(encoding="utf-8")
    response = None
    if text is not None:
        try:
            response = json.loads(text)
        except ValueError as exc:
            parser.error(f"--response: not valid JSON ({exc})")
        if not isinstance(response, dict):
            parser.error("--response: must be a JSON object")
    try:
        print(anti_call(Path(args.log_file), args.index, response, args.timeout))
    except TimeoutError as exc:
        sys.exit(f"anti-call-llm: {exc}")
