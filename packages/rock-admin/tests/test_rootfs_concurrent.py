"""The host root's mask layer built by many starts at once (threads of one admin, as a burst does): one mask,
no start failing on another's half-built copy."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rock_admin.runtimes import rootfs


def test_concurrent_builds_of_one_mask(tmp_path: Path) -> None:
    def build(_: int) -> str:
        return rootfs.build_mask(str(tmp_path), "/", True, [], [])

    with ThreadPoolExecutor(8) as pool:
        paths = set(pool.map(build, range(16)))
    assert len(paths) == 1
    mask = Path(paths.pop())
    assert (mask / "etc" / "shadow").is_file() and (mask / "run" / "rocklet").is_dir()
    assert [p.name for p in tmp_path.iterdir()] == [mask.name]  # no half-built copy left behind
