"""The pipeline's checkpoint folder: `checkpoint-<step>/` per saved step (one folder per role, written by its
strategy, plus `pipeline_state.pt` with the driver's state), written under a temporary name and renamed, so a
checkpoint is complete or absent; the oldest pruned beyond `max_ckpt_to_keep`; `resume_from_checkpoint`
resolved to one of them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: The driver's part of a checkpoint; its presence marks a folder as a roll checkpoint.
PIPELINE_STATE = "pipeline_state.pt"


class CheckpointDir:
    def __init__(self, root: Path, keep: int | None) -> None:
        self.root = root
        self.keep = keep

    def saved(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        return sorted(self.root.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))

    @contextmanager
    def writing(self, step: int) -> Iterator[Path]:
        """A fresh folder to write step `step`'s checkpoint into; on success it becomes `checkpoint-<step>` and
        checkpoints beyond `keep` are removed, on an error it is left as a temporary folder the next save clears."""
        path = self.root / f"checkpoint-{step}"
        tmp = self.root / f".tmp-checkpoint-{step}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        yield tmp
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
        if self.keep:
            for old in self.saved()[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)

    def resume_path(self, setting: Any) -> Path | None:
        """`resume_from_checkpoint`: false/empty → none, true → the latest here, a path → that checkpoint."""
        if setting is False or setting is None or setting == "":
            return None
        if setting is True:
            found = self.saved()
            if not found:
                raise FileNotFoundError(f"resume_from_checkpoint: true but no checkpoint-* under {self.root}")
            return found[-1]
        path = Path(str(setting))
        if not (path / PIPELINE_STATE).is_file():
            raise FileNotFoundError(
                f"resume_from_checkpoint: {path} is not a roll checkpoint (no {PIPELINE_STATE})"
            )
        return path
