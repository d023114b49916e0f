"""The runtimes by name (`runtime:` in the admin's config). Each is imported when chosen: `docker` needs the
Docker SDK, which a process-runtime install does not have."""

from __future__ import annotations

import importlib
from typing import Any

from rock_admin.runtimes.base import Runtime

#: name → "module:class"
RUNTIMES = {
    "process": "rock_admin.runtimes.process:ProcessRuntime",
    "docker": "rock_admin.runtimes.docker:DockerRuntime",
}


def create_runtime(kind: str, **kwargs: Any) -> Runtime:
    if kind == "ray":
        raise ValueError("'ray' is a scheduler, not a runtime: use scheduler: ray (with runtime: process)")
    if kind not in RUNTIMES:
        raise ValueError(f"unknown runtime {kind!r} (available: {', '.join(RUNTIMES)})")
    module, name = RUNTIMES[kind].split(":")
    return getattr(importlib.import_module(module), name)(**kwargs)
