"""A minimal tool-using agent: it asks the model for a shell command, runs it, shows the model the result.

    OPENAI_BASE_URL=http://127.0.0.1:28080/v1 python -m rock.agents.bash_agent --task-file task.txt

Each reply either holds one ```bash fenced block (or an OpenAI tool call `bash` with {"command"}), which is
run (its exit code and output, cut to 4,000 characters, go back to the model), or says DONE, which ends the
run; anything else gets a reminder. It stops after `--max-turns` replies. Exit 0 unless the API call fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

SYSTEM = (
    "You are an agent in a Linux sandbox. To run a shell command, reply with exactly one fenced block:\n"
    "```bash\n<command>\n```\n"
    "You will see its exit code and output. When the task is done, reply DONE."
)
REMINDER = "No command found. Reply with one ```bash block to run a command, or DONE when the task is done."
BASH_TOOL = {
    "type": "function",
    "function": {
        "name": "bash",
        "description": "Run a shell command in the sandbox",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
    },
}
MAX_FEEDBACK = 4000
_BLOCK = re.compile(r"```(?:bash|sh)?[ \t]*\n(.*?)```", re.DOTALL)


def command_in(text: str) -> str | None:
    """The first ```bash block's command, or None."""
    match = _BLOCK.search(text or "")
    return match.group(1).strip() if match and match.group(1).strip() else None


def run_command(command: str, timeout: float) -> str:
    try:
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=timeout)
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired:
        output, code = f"(timed out after {timeout:g} s)", 124
    if len(output) > MAX_FEEDBACK:
        output = output[:MAX_FEEDBACK] + "\n(output cut)"
    return f"exit code {code}\n{output}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rock.agents.bash_agent", description=__doc__)
    task = parser.add_mutually_exclusive_group(required=True)
    task.add_argument("--task", help="the task text")
    task.add_argument("--task-file", help="a file holding the task text")
    parser.add_argument("--max-turns", type=int, default=8)
    parser.add_argument("--command-timeout", type=float, default=30.0)
    parser.add_argument("--model", default=os.environ.get("OPENAI_MODEL") or "policy")
    parser.add_argument("--tools", action="store_true", help="offer the bash tool as an OpenAI function too")
    args = parser.parse_args(argv)
    from openai import OpenAI  # imported late so --help works without the package

    client = OpenAI(max_retries=0)  # OPENAI_BASE_URL / OPENAI_API_KEY from the environment
    text = args.task if args.task is not None else Path(args.task_file).read_text(encoding="utf-8")
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": text},
    ]
    stopped = "max_turns"
    for _ in range(args.max_turns):
        extra = {"tools": [BASH_TOOL]} if args.tools else {}
        reply = client.chat.completions.create(model=args.model, messages=messages, **extra)
        message = reply.choices[0].message
        content = message.content or ""
        calls = message.tool_calls or []
        entry: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            entry["tool_calls"] = [c.model_dump() for c in calls]
        messages.append(entry)
        if calls:
            for call in calls:
                command = json.loads(call.function.arguments or "{}").get("command", "")
                result = run_command(command, args.command_timeout)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
            continue
        command = command_in(content)
        if command is not None:
            messages.append({"role": "user", "content": run_command(command, args.command_timeout)})
        elif "DONE" in content:
            stopped = "done"
            break
        else:
            messages.append({"role": "user", "content": REMINDER})
    print(json.dumps({"turns": sum(m["role"] == "assistant" for m in messages), "stopped": stopped}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
