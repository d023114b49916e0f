"""What an upload sends: a file as it is, a directory as a zip that the rocklet unpacks at the target."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def upload_source(source_path: str | os.PathLike[str]) -> Iterator[tuple[str, BinaryIO, bool]]:
    """(file name, the open file, whether to unzip) for `source_path`, valid inside the `with`."""
    source = Path(source_path)
    if not source.exists():
        raise FileNotFoundError(f"No such file or directory: {str(source)!r}")
    with tempfile.TemporaryDirectory(prefix="rock-upload-") as tmp:
        unzip = source.is_dir()
        path = Path(shutil.make_archive(str(Path(tmp) / "upload"), "zip", source)) if unzip else source
        with path.open("rb") as f:
            yield source.name or "upload", f, unzip
