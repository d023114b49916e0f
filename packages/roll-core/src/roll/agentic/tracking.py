"""Metrics out: stdout lines, a JSONL file (always) and TensorBoard (track_with: tensorboard)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any


class Tracker:
    def __init__(
        self,
        track_with: str,
        logging_dir: str,
        tracker_kwargs: dict | None,
        exp_name: str,
        stdout: bool = True,
        resume: bool = False,
    ) -> None:
        self.dir = Path(logging_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = self.dir / "metrics.jsonl"
        if not resume and self.jsonl_path.exists():
            self.jsonl_path.unlink()
        self.stdout = stdout
        self.writer = None
        if track_with == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            log_dir = (tracker_kwargs or {}).get("log_dir") or str(self.dir / "tensorboard")
            self.writer = SummaryWriter(log_dir=str(Path(log_dir) / exp_name))

    def truncate_after(self, step: int) -> None:
        """On resume: keep only the lines up to `step` (a crashed run may have logged further)."""
        if not self.jsonl_path.exists():
            return
        keep = [
            line
            for line in self.jsonl_path.read_text().splitlines()
            if line and json.loads(line)["step"] <= step
        ]
        self.jsonl_path.write_text("".join(line + "\n" for line in keep))

    def log(self, metrics: dict[str, Any], step: int) -> None:
        clean = {
            k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(float(v))
        }
        with self.jsonl_path.open("a") as f:
            f.write(json.dumps({"step": step, **clean}, sort_keys=True) + "\n")
        if self.writer is not None:
            for k, v in clean.items():
                self.writer.add_scalar(k, v, step)
            self.writer.flush()
        if self.stdout:
            keys = [
                k
                for k in (
                    "rollout/score/mean",
                    "val/score/mean",
                    "actor/pg_loss",
                    "actor/grad_norm",
                    "time/step_total",
                )
                if k in clean
            ]
            summary = " ".join(f"{k}={clean[k]:.4g}" for k in keys)
            print(f"[roll] step {step}: {summary}", file=sys.stdout, flush=True)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
