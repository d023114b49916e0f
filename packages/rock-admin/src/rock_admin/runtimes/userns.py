"""Host uid ranges for sandboxes' user namespaces: sandbox `k` gets host uids and gids
`base + k*SIZE .. base + (k+1)*SIZE - 1` (its 0..65535 inside), one range per sandbox, none the host's root.

A sandbox keeps its range across stop/restart (its files are owned by it): the range is recorded by the owner
of a dir in the sandbox's dir (the process runtime's `upper/`, the root's writable layer; the docker runtime's
`run/`), which the runtime creates and chowns to the range's first uid, so an admin restart finds every range
in use again without any other state.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

#: Ids per sandbox: 0..65535 inside, as in a Docker image (nobody is 65534).
SIZE = 65536
#: Kept below 2**31: the ids a sandbox's ICMP sockets may use (ping_group_range) stop there.
_TOP = 2**31


class UidRanges:
    def __init__(self, sandboxes_dir: Path, base: int = 100_000, marker: str = "upper") -> None:
        if base < 1:
            raise ValueError(f"userns_base: must be >= 1 (0 is the host's root), got {base}")
        self.sandboxes_dir = sandboxes_dir
        self.base = base
        self.marker = marker
        self._lock = threading.Lock()  # starts prepare in worker threads
        self._slots: dict[str, int] | None = None  # sandbox id -> slot

    def _scan(self) -> dict[str, int]:
        slots = {}
        for marked in self.sandboxes_dir.glob(f"*/{self.marker}"):
            slot = self._slot_of(marked)
            if slot is not None:
                slots[marked.parent.name] = slot
        return slots

    def _slot_of(self, marked: Path) -> int | None:
        try:
            uid = os.lstat(marked).st_uid
        except OSError:
            return None
        if uid < self.base or (uid - self.base) % SIZE:
            return None
        return (uid - self.base) // SIZE

    def first_uid(self, sandbox_id: str) -> int:
        """The sandbox's first host uid (= gid): the one it had, else the lowest free range."""
        with self._lock:
            if self._slots is None:
                self._slots = self._scan()
            slot = self._slots.get(sandbox_id)
            if slot is None:
                slot = self._slot_of(self.sandboxes_dir / sandbox_id / self.marker)
            if slot is None:
                used = set(self._slots.values())
                slot = next(k for k in range(len(used) + 1) if k not in used)
            uid = self.base + slot * SIZE
            if uid + SIZE > _TOP:
                raise OSError(f"no host uid range left for a user namespace (userns_base {self.base})")
            self._slots[sandbox_id] = slot
            return uid

    def release(self, sandbox_id: str) -> None:
        with self._lock:
            if self._slots is not None:
                self._slots.pop(sandbox_id, None)
