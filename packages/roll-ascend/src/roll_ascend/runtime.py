"""Whether the Ascend runtime (torch-npu over CANN) works here, as one line when it does not."""

from __future__ import annotations

import functools
import importlib
import logging
from dataclasses import dataclass

log = logging.getLogger("roll_ascend")

FIX = "install CANN and `source /usr/local/Ascend/ascend-toolkit/set_env.sh` (or `source <CANN>/set_env.sh`)"


@dataclass(frozen=True)
class RuntimeStatus:
    ok: bool
    reason: str = ""  # one line, only when not ok


@functools.cache
def probe() -> RuntimeStatus:
    """Import torch_npu once; any failure (a missing libhccl.so raises more than ImportError) becomes a reason."""
    try:
        importlib.import_module("torch_npu")
    except ModuleNotFoundError as exc:
        if exc.name != "torch_npu":
            return _failed(f"import torch_npu failed: {exc}; {FIX}")
        return _failed("torch-npu is not installed (`pip install roll-core[ascend]`); then " + FIX)
    except Exception as exc:  # torch_npu raises ImportError, OSError or RuntimeError without CANN
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return _failed(f"import torch_npu failed ({type(exc).__name__}: {first}); {FIX}")
    return RuntimeStatus(True)


def _failed(detail: str) -> RuntimeStatus:
    status = RuntimeStatus(False, f"Ascend runtime not found: {detail}")
    log.info(status.reason)  # auto-detection then falls back to the next platform
    return status
