"""Terminal/coding tasks for agent-native episodes: a prompt, a setup and a verifier, all shell.

`setup` runs in an empty work dir in the sandbox (it writes the task's files), the agent then works in
that dir, and `verify` runs there afterwards: exit 0 = solved (reward 1.0). Both get `$PYTHON` (the
interpreter the sandbox can run). `solution` (optional) is a known fix, used by tests to prove that each
verifier can pass and does not pass before the fix. The shipped set is `terminal.json` next to this file;
`task_file` points at another JSON or YAML list of the same objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

SHIPPED = Path(__file__).with_name("terminal.json")
KEYS = ("name", "prompt", "setup", "verify", "solution")


@dataclass(frozen=True)
class Task:
    name: str
    prompt: str
    setup: str
    verify: str
    solution: str = ""


def load_tasks(task_file: str | Path | None = None, names: list[str] | None = None) -> list[Task]:
    """The tasks of `task_file` (default: the shipped set), restricted to `names` in that order."""
    path = Path(task_file) if task_file else SHIPPED
    if not path.is_file():
        raise FileNotFoundError(f"agent.task_file: {path} does not exist")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        from omegaconf import OmegaConf

        data = OmegaConf.to_container(OmegaConf.create(text))
    else:
        data = json.loads(text)
    if not isinstance(data, list) or not data:
        raise ValueError(f"agent.task_file: {path}: expected a non-empty list of tasks")
    tasks: dict[str, Task] = {}
    for i, item in enumerate(data):
        where = f"agent.task_file: {path}[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: a task is an object with {', '.join(KEYS[:4])}")
        unknown = sorted(set(item) - set(KEYS))
        missing = [k for k in KEYS[:4] if not isinstance(item.get(k), str) or not item[k].strip()]
        if unknown or missing:
            raise ValueError(
                f"{where}: "
                + "; ".join(
                    [f"unknown key {k!r}" for k in unknown]
                    + [f"{k} must be a non-empty string" for k in missing]
                )
            )
        if item["name"] in tasks:
            raise ValueError(f"{where}: task name {item['name']!r} appears twice")
        tasks[item["name"]] = Task(**{k: str(item.get(k, "")) for k in KEYS})
    if not names:
        return list(tasks.values())
    unknown_names = [n for n in names if n not in tasks]
    if unknown_names:
        raise ValueError(f"agent.tasks: {unknown_names} not in {path.name} (known: {', '.join(tasks)})")
    return [tasks[n] for n in names]
