"""A process-runtime sandbox's file system: a writable overlay over a read-only, minimal lower root.

Per sandbox, `<state_dir>/sandboxes/<id>/` is a tmpfs of the sandbox's `disk` size (0700, nosuid, nodev, noexec
on the host), mounted by the admin and kept until delete: it holds the overlay's `upper/` and `work/` and the
rocklet's `run/`, so everything the sandbox writes (/, /etc, /root, /tmp, its run dir) counts against `disk`,
fails with ENOSPC there, never lands on the host's disk, survives a stop/restart and goes with delete. (tmpfs
pages are memory: they are charged to the sandbox's memory cgroup while it runs.)

The lower root is `mask:image`. The mask, built once per image and admin on a small tmpfs of its own (overlay
refuses layers nested in one another), holds the sandbox's own mount points and, for the host's root, hides all
but an allow-list: the host's /usr, /bin, /sbin, /lib*, /etc (minus its secrets, with a sanitized shadow)
show through; every other top-level entry is a whiteout, or an empty opaque dir where sandboxes expect one
(/tmp, /root, /home/user, /var...). The rocklet's interpreter paths outside the allow-list come back as
read-only binds on mount points made in the mask.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from rock_admin.runtimes import linux

#: Host top-level entries a sandbox on the host's root sees (read-only below, writable through the overlay).
ALLOWED = ("bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc")
#: Top-level dirs a sandbox gets empty (opaque: nothing of the host's shows through), with their modes.
EMPTY = {
    "tmp": 0o1777,
    "root": 0o700,
    "home": 0o755,
    "run": 0o755,
    "var": 0o755,
    "opt": 0o755,
    "mnt": 0o755,
    "media": 0o755,
    "srv": 0o755,
    "proc": 0o555,
    "dev": 0o755,
    "sys": 0o555,
}
#: Dirs under those, as in a Debian image.
SKELETON = {
    "home/user": 0o755,
    "run/rocklet": 0o755,
    "run/lock": 0o1777,
    "var/tmp": 0o1777,
    "var/log": 0o755,
    "var/cache": 0o755,
    "var/lib": 0o755,
    "var/spool": 0o755,
    "var/mail": 0o2775,
    "var/local": 0o755,
    "var/opt": 0o755,
}
#: What any image's root needs for the sandbox: mount points and HOME.
NEEDED = ("proc", "dev", "sys", "tmp", "run/rocklet", "home/user")
#: Host /etc entries that are secrets (globs), hidden behind whiteouts; shadow and gshadow are replaced.
ETC_SECRETS = (
    "shadow-",
    "gshadow-",
    "ssh/ssh_host_*",
    "ssl/private",
    "sudoers",
    "sudoers.d",
    "security/opasswd",
    "krb5.keytab",
    "pip.conf",
    "npmrc",
    "containers/auth.json",
    "rock-admin",
)
#: The mask's layout version: a change makes new masks (old ones are left to the admin's next mask mount).
_VERSION = 2


def _whiteout(path: str) -> None:
    """An overlay whiteout (a 0/0 character device): the name does not exist in the merged root."""
    os.mknod(path, 0o600 | 0o020000, os.makedev(0, 0))


def _opaque_dir(path: str, mode: int) -> None:
    """A dir that shows nothing of the layers below it (trusted.overlay.opaque)."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)
    os.setxattr(path, "trusted.overlay.opaque", b"y")


def _dirs_like(mask: str, rel: str, image: str) -> None:
    """`rel` and its parents in the mask, each with the image's mode and owner where the image has it (the
    mask's dir is what the merged root shows)."""
    parts = rel.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        sub = "/".join(parts[:i])
        target = f"{mask}/{sub}"
        if not os.path.isdir(target):
            os.mkdir(target)
            try:
                st = os.stat(f"{image}/{sub}")
            except OSError:
                os.chmod(target, 0o1777 if sub == "tmp" else 0o755)
                continue
            os.chown(target, st.st_uid, st.st_gid)
            os.chmod(target, st.st_mode & 0o7777)


def _sanitized(path: str) -> str:
    """/etc/shadow or /etc/gshadow with every password field `*` (aging fields dropped: no host facts)."""
    lines = []
    with contextlib.suppress(OSError), open(path) as f:
        for line in f:
            name = line.split(":", 1)[0].strip()
            if name and not name.startswith("#"):
                lines.append(f"{name}:*::0:99999:7:::" if "gshadow" not in path else f"{name}:*::")
    return "".join(line + "\n" for line in lines)


def host_mounts_under_allowed() -> list[str]:
    """Mount points on the host inside the allow-list (a separate /usr, Docker's /etc/hosts): an overlay's
    lower layer does not cross mounts, so these are bound into the sandbox read-only instead."""
    points = []
    with open("/proc/self/mountinfo") as table:
        for line in table:
            point = line.split()[4].replace("\\040", " ")
            top = point.lstrip("/").split("/", 1)[0]
            if point != "/" and top in ALLOWED and os.path.lexists(point):
                points.append(point)
    return points


def build_mask(base: str, rootfs: str, host: bool, binds: list[str], hide: list[str]) -> str:
    """The mask layer for `rootfs` under `base` (made once; the same inputs give the same dir)."""
    top = sorted(os.listdir(rootfs)) if host else []
    key = json.dumps([_VERSION, rootfs, host, top, sorted(binds), sorted(hide)])
    path = os.path.join(base, hashlib.sha256(key.encode()).hexdigest()[:16])
    if os.path.isdir(path):
        return path
    # Unique per call: concurrent starts (threads of one admin) may build the same mask at once.
    tmp = tempfile.mkdtemp(prefix=f"{os.path.basename(path)}.", suffix=".tmp", dir=base)
    os.chmod(tmp, 0o755)  # the merged root's mode where the upper has none yet
    if not host:  # an image's own root: only what is missing, its own dirs' modes kept
        for rel in [*NEEDED, *(b for b in binds if os.path.isdir(b))]:
            _dirs_like(tmp, rel, rootfs)
    else:
        for name, mode in EMPTY.items():
            _opaque_dir(f"{tmp}/{name}", mode)
        for name, mode in SKELETON.items():
            os.makedirs(f"{tmp}/{name}", mode, exist_ok=True)
            os.chmod(f"{tmp}/{name}", mode)
        os.symlink("/run", f"{tmp}/var/run")
        os.symlink("/run/lock", f"{tmp}/var/lock")
        needed = {p.lstrip("/").split("/", 1)[0] for p in binds}
        for name in top:
            if name in ALLOWED or name in EMPTY:
                continue
            if name in needed:
                _opaque_dir(f"{tmp}/{name}", 0o755)
            else:
                _whiteout(f"{tmp}/{name}")
        os.makedirs(f"{tmp}/etc", 0o755, exist_ok=True)
        for name in ("shadow", "gshadow"):
            if os.path.exists(f"/etc/{name}"):
                with open(f"{tmp}/etc/{name}", "w") as f:
                    f.write(_sanitized(f"/etc/{name}"))
                os.chmod(f"{tmp}/etc/{name}", 0o640)
        secrets = [p for pattern in ETC_SECRETS for p in glob.glob(f"/etc/{pattern}")]
        for secret in [*secrets, *hide]:
            rel = secret.lstrip("/")
            if (
                rel.split("/", 1)[0] in ALLOWED
                and os.path.lexists(secret)
                and not os.path.lexists(f"{tmp}/{rel}")
            ):
                os.makedirs(os.path.dirname(f"{tmp}/{rel}"), exist_ok=True)
                _whiteout(f"{tmp}/{rel}")
    for bind in binds:
        target = f"{tmp}{bind}"
        if os.path.isdir(bind):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "w").close()
    try:
        os.rename(tmp, path)
    except OSError:  # another admin process made the same mask meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def is_mount(path: Path) -> bool:
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev
    except OSError:
        return False


def mount_tmpfs(path: Path, size: int) -> None:
    """A tmpfs of `size` bytes (0: the kernel's default, half the RAM) at `path`, 0700, nothing to exec."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    if is_mount(path):  # a stopped sandbox being restarted: its files are there
        return
    options = f"mode=0700,size={size}" if size else "mode=0700"
    linux.mount("tmpfs", str(path), "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC, options)


def unmount(path: Path) -> None:
    """Detach the tmpfs at `path` (its memory is freed once no sandbox process holds it open)."""
    if is_mount(path):
        with contextlib.suppress(OSError):
            linux.umount2(str(path), linux.MNT_DETACH)
