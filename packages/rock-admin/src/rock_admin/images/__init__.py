"""The local image store: a name → a root file system on this machine.

Built in: `host` (the host's root, read-only) and, when the host's `/usr/bin/python3` is Python 3.11,
`python:3.11` (upstream's default image) as the host's root too, so a fresh install runs upstream's examples.
`rock-admin image import NAME DIR_OR_TAR` adds one: a directory is used in place, a tarball is unpacked into
the store. An unknown name is an error that lists the images that exist.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rock_admin.errors import UnknownImageError


@dataclass
class Image:
    name: str
    rootfs: str
    kind: str  # "builtin" or "imported"
    python: str = ""
    created: float = 0.0
    description: str = ""

    @property
    def is_host(self) -> bool:
        return os.path.realpath(self.rootfs) == "/"


def _python_version(rootfs: str) -> str:
    exe = os.path.join(rootfs, "usr/bin/python3")
    if not os.path.exists(exe):
        return ""
    real = os.path.realpath(exe)
    m = re.search(r"python(\d+\.\d+)$", real)
    if m:
        return m.group(1)
    if rootfs == "/":
        try:
            out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
            return ".".join(out.split()[1].split(".")[:2])
        except (OSError, IndexError, subprocess.SubprocessError):
            return ""
    return ""


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


class ImageStore:
    def __init__(self, state_dir: str, engine: bool = False) -> None:
        #: With a container engine (runtime `docker`) every well-formed name is the engine's to resolve.
        self.engine = engine
        self.dir = Path(state_dir) / "images"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._builtin = self._builtins()

    @staticmethod
    def _builtins() -> dict[str, Image]:
        images = {
            "host": Image("host", "/", "builtin", _python_version("/"), 0.0, "the host's root, read-only")
        }
        if images["host"].python == "3.11":
            images["python:3.11"] = Image(
                "python:3.11", "/", "builtin", "3.11", 0.0, "the host's root (its python3 is 3.11), read-only"
            )
        return images

    def _meta_path(self, name: str) -> Path:
        return self.dir / (re.sub(r"[^A-Za-z0-9._-]", "_", name) + ".json")

    def list(self) -> list[Image]:
        images = dict(self._builtin)
        for meta in sorted(self.dir.glob("*.json")):
            try:
                image = Image(**json.loads(meta.read_text()))
            except (OSError, ValueError, TypeError):
                continue
            images[image.name] = image
        return sorted(images.values(), key=lambda i: i.name)

    def names(self) -> list[str]:
        return [i.name for i in self.list()]

    def get(self, name: str) -> Image:
        if self.engine:
            if not _NAME.match(name):
                raise UnknownImageError(f"image {name!r}: use letters, digits and . _ : / - (at most 128)")
            return Image(name, "", "engine", description="resolved by the container engine")
        meta = self._meta_path(name)
        if meta.exists():
            image = Image(**json.loads(meta.read_text()))
            if image.name == name:
                return image
        if name in self._builtin:
            return self._builtin[name]
        raise UnknownImageError(
            # Upstream's wording first (its clients and users look for it), then what can be used here.
            f"Failed to pull image {name}: not in the local image store (this admin pulls from no registry); "
            f"available images: {', '.join(self.names())} (add one with: rock-admin image import NAME ROOTFS_DIR_OR_TAR)"
        )

    def import_image(self, name: str, source: str) -> Image:
        if not _NAME.match(name):
            raise ValueError(f"image name {name!r}: use letters, digits and . _ : / - (at most 128)")
        src = Path(source).resolve()
        if src.is_dir():
            rootfs = str(src)
        elif src.is_file() and tarfile.is_tarfile(src):
            target = self.dir / "rootfs" / re.sub(r"[^A-Za-z0-9._-]", "_", name)
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            with tarfile.open(src) as tf:
                tf.extractall(target, filter="tar")
            rootfs = str(target)
        else:
            raise ValueError(f"{source}: not a directory or a tar archive")
        for needed in ("bin", "usr"):
            if not (Path(rootfs) / needed).exists():
                raise ValueError(f"{source}: does not look like a root file system (no /{needed})")
        image = Image(
            name, rootfs, "imported", _python_version(rootfs), time.time(), f"imported from {source}"
        )
        self._meta_path(name).write_text(json.dumps(asdict(image)))
        return image
