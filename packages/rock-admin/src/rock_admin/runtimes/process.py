"""The `process` runtime: a sandbox is a rocklet forked from a preloaded zygote into fresh pid/mount/net/uts/ipc
namespaces, on a writable overlay root of its own, limited by cgroups, reached over a Unix socket.

Per sandbox, `<state_dir>/sandboxes/<id>/` is a tmpfs of its `disk` size (see `rootfs`): `root/` (the overlay's
mount point, inside the sandbox only), `upper/` and `work/` (the overlay's writable layer), `run/` →
`/run/rocklet` (socket, log, the rocklet's state, `exit.json` when it ends). The lower root is minimal: for the
host's root an allow-list (/usr, /bin, /lib*, /etc less its secrets), never the host's /tmp, /home, /root,
/var, the project tree or the admin's state dir. Capabilities are cut to Docker's default set minus MKNOD, so
nothing inside can mount or reach the layers. Without namespaces (`isolation: none`) the dirs are plain:
`tmp/`, `home/`, `run/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

from rock_admin.errors import LaunchError
from rock_admin.runtimes import rootfs
from rock_admin.runtimes.base import Endpoint, Handle, Runtime, SandboxSpec
from rock_admin.runtimes.cgroups import Cgroups, Limits
from rock_admin.runtimes.host import UDS_MAX, directory_via_fd, pid_start, python_paths, rocklet_end
from rock_admin.runtimes.userns import SIZE, UidRanges
from rock_admin.runtimes.zygote_client import ZygoteClient

log = logging.getLogger("rock_admin.runtime")


class ProcessRuntime(Runtime):
    name = "process"

    def __init__(
        self,
        state_dir: str,
        isolation: str = "auto",
        hide_paths: list[str] | None = None,
        cgroup_parent: str = "",
        userns: str = "auto",
        userns_base: int = 100_000,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.sandboxes_dir = self.state_dir / "sandboxes"
        self.sandboxes_dir.mkdir(parents=True, exist_ok=True)
        self.sandboxes_dir.chmod(0o700)  # the sandboxes' files are the admin's alone: no one else gets in
        self.zygote = ZygoteClient(self.state_dir)
        if isolation == "auto":
            isolation = "namespaces" if os.geteuid() == 0 else "none"
        if isolation == "namespaces" and os.geteuid() != 0:
            raise LaunchError("isolation 'namespaces' needs the admin to run as root (use isolation: none)")
        self.isolation = isolation
        if userns not in ("auto", "on", "off"):
            raise ValueError(f"userns: expected auto, on or off, got {userns!r}")
        #: Sandbox root is an unprivileged host uid range (`userns`); `auto` runs without where the kernel cannot.
        self.userns = userns if isolation == "namespaces" else "off"
        self.uids = UidRanges(self.sandboxes_dir, userns_base)
        #: Hidden in the host's root besides what the allow-list leaves out (see `rootfs`).
        self.hide = [str(self.state_dir), *(hide_paths or [])]
        self.cgroups = Cgroups(cgroup_parent or "rock-admin")
        self._watched: dict[int, int] = {}  # pidfd → pid
        self._python_paths: list[str] | None = None
        #: The mask layers, one per image (see `rootfs`), on a small tmpfs of their own.
        self.masks_dir = self.state_dir / "masks"
        self._masks: dict[str, tuple[str, list[str]]] = {}
        if isolation == "namespaces":
            rootfs.mount_tmpfs(self.masks_dir, 16 << 20)

    # ------------------------------------------------------------------ zygote

    async def ensure_zygote(self) -> int:
        return await self.zygote.ensure()

    def stop_zygote(self) -> None:
        self.zygote.stop()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, spec: SandboxSpec) -> Handle:
        isolate = self.isolation == "namespaces"
        sdir = self.sandboxes_dir / spec.sandbox_id
        names = ("root", "upper", "work", "run") if isolate else ("tmp", "home", "run")
        dirs = {name: sdir / name for name in names}
        # The private dirs, the mask and the cgroups in one trip to a worker thread (file system calls stay off
        # the event loop, which serves every other request meanwhile).
        limits, (mask, binds) = await asyncio.to_thread(self._prepare, spec, dirs)
        payload = {
            "sandbox_id": spec.sandbox_id,
            "isolate": isolate,
            "hostname": spec.sandbox_id[:63],
            "rootfs": spec.image.rootfs,
            "mask": mask,
            "root_dir": str(sdir / "root"),
            "upper": str(sdir / "upper"),
            "work": str(sdir / "work"),
            "run_dir": str(dirs["run"]),
            "tmp_dir": str(sdir / "tmp"),
            "extra_binds": binds,
            "writable": {str(dirs["run"]): "/run/rocklet"},
            "home": "/home/user" if isolate else str(dirs["home"]),
            "cgroup_procs": limits.procs,
            "userns": self._userns(spec.sandbox_id),
            "token": spec.token,
            "env": spec.env,
        }
        try:
            reply = await self.zygote.ask(payload)
        except (OSError, ValueError, LaunchError) as exc:
            await asyncio.to_thread(self.cgroups.remove, limits.dirs)
            raise LaunchError(f"could not reach the sandbox zygote: {exc}") from exc
        if "error" in reply:
            if reply.get("pid"):
                with contextlib.suppress(OSError):
                    os.kill(reply["pid"], signal.SIGKILL)
            await asyncio.to_thread(self.cgroups.remove, limits.dirs)
            raise LaunchError(f"sandbox setup failed: {reply['error']}")
        pid = int(reply["pid"])
        kinds = "pid, mount, net, uts, ipc, cgroup" + (", user" if reply.get("userns") else "")
        if reply.get("userns_error"):
            log.warning(
                "sandbox %s runs without a user namespace: %s", spec.sandbox_id, reply["userns_error"]
            )
        return Handle(
            sandbox_id=spec.sandbox_id,
            uds=str(dirs["run"] / "rocklet.sock"),
            pid=pid,
            pid_start=pid_start(pid),
            sandbox_dir=str(sdir),
            isolation=f"namespaces ({kinds}), overlay root" if isolate else "none",
            limits_enforced=limits.enforced,
            limits_message=limits.message,
            cgroups=limits.dirs,
        )

    def _prepare(self, spec: SandboxSpec, dirs: dict[str, Path]) -> tuple[Limits, tuple[str, list[str]]]:
        sdir = dirs["run"].parent
        mask: tuple[str, list[str]] = ("", [])
        if self.isolation == "namespaces":
            rootfs.mount_tmpfs(sdir, spec.disk_bytes)  # kept (with its files) by a stopped sandbox
            mask = self._mask(spec)
        else:
            os.makedirs(sdir, mode=0o700, exist_ok=True)
        for d in dirs.values():
            os.makedirs(d, mode=0o755, exist_ok=True)  # upper/ gives the merged root its mode
        if "tmp" in dirs:
            os.chmod(dirs["tmp"], 0o1777)
        if self.userns != "off":
            uid = self.uids.first_uid(spec.sandbox_id)
            os.chown(dirs["upper"], uid, uid)  # the merged root's owner: the sandbox's root
            # The run dir stays the host root's, sticky: the sandbox writes there (the rocklet's state) but
            # cannot swap what B made in it (the socket the admin connects to, the log, exit.json) for a link.
            os.chown(dirs["run"], 0, 0)
            os.chmod(dirs["run"], 0o1777)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dirs["run"] / "exit.json")
        limits = self.cgroups.create(spec.sandbox_id, spec.memory_bytes, spec.cpus, spec.pids_max)
        return limits, mask

    def _userns(self, sandbox_id: str) -> dict[str, object]:
        if self.userns == "off":
            return {}
        return {"uid": self.uids.first_uid(sandbox_id), "size": SIZE, "required": self.userns == "on"}

    def _mask(self, spec: SandboxSpec) -> tuple[str, list[str]]:
        """The image's mask layer and binds, made on first use (a few ms) and reused by its every sandbox."""
        key = spec.image.rootfs
        if key not in self._masks:
            binds = self._extra_binds(spec)
            mask = rootfs.build_mask(str(self.masks_dir), key, spec.image.is_host, binds, self.hide)
            self._masks[key] = (mask, binds)
        return self._masks[key]

    def endpoint(self, handle: Handle) -> Endpoint:
        """The socket path, shortened through a directory fd when it is over sun_path's 108 bytes."""
        return Endpoint(uds=self._connect_path(handle))

    def _connect_path(self, handle: Handle) -> str:
        if len(handle.uds) <= UDS_MAX:
            return handle.uds
        rel = os.path.relpath(handle.uds, self.sandboxes_dir)
        path = f"{self._short_sandboxes}/{rel}"
        if len(path) > UDS_MAX:
            raise LaunchError(f"socket path too long even shortened: {path} (use a shorter sandbox id)")
        return path

    @property
    def _short_sandboxes(self) -> str:
        return directory_via_fd(str(self.sandboxes_dir))

    def _extra_binds(self, spec: SandboxSpec) -> list[str]:
        """Host paths to bind into the sandbox read-only: the rocklet's interpreter paths (all of them for an
        imported image; for the host's root those outside the allow-list, e.g. a Python under /root or a venv
        in the project tree), and the host's mounts inside the allow-list (which an overlay does not show)."""
        if self._python_paths is None:  # the interpreter's paths do not change: resolved once (realpath)
            self._python_paths = python_paths()
        paths = self._python_paths
        if not spec.image.is_host:
            return list(paths)
        outside = [p for p in paths if p.lstrip("/").split("/", 1)[0] not in rootfs.ALLOWED]
        return outside + rootfs.host_mounts_under_allowed()

    def is_running(self, handle: Handle) -> bool:
        return bool(handle.pid) and pid_start(handle.pid) == handle.pid_start and handle.pid_start != 0

    async def stop(self, handle: Handle) -> None:
        if self.is_running(handle):
            try:
                fd = os.pidfd_open(handle.pid)
            except OSError:
                fd = -1
            if fd >= 0:
                try:
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                    # Wait until it is gone (the pidfd turns readable), at most 5 s.
                    loop = asyncio.get_running_loop()
                    done = loop.create_future()
                    loop.add_reader(fd, lambda: done.done() or done.set_result(None))
                    try:
                        await asyncio.wait_for(done, 5)
                    except asyncio.TimeoutError:
                        log.warning("sandbox %s did not die within 5 s", handle.sandbox_id)
                    finally:
                        loop.remove_reader(fd)
                except OSError:
                    pass
                finally:
                    os.close(fd)
        if self.isolation != "namespaces" and handle.cgroups:
            await asyncio.to_thread(Cgroups.kill_all, handle.cgroups)
        # The limits go with the processes (a restart makes them again); the files stay until `remove`.
        await asyncio.to_thread(self._remove_cgroups, handle.cgroups)

    @staticmethod
    def _remove_cgroups(dirs: list[str]) -> None:
        for _ in range(50):
            Cgroups.remove(dirs)
            if not any(os.path.isdir(d) for d in dirs):
                return
            time.sleep(0.01)

    def remove(self, handle: Handle) -> None:
        Cgroups.kill_all(handle.cgroups)
        self._remove_cgroups(handle.cgroups)
        self.uids.release(handle.sandbox_id)
        if handle.sandbox_dir and Path(handle.sandbox_dir).parent == self.sandboxes_dir:
            rootfs.unmount(Path(handle.sandbox_dir))  # the sandbox's disk: its files go with it
            shutil.rmtree(handle.sandbox_dir, ignore_errors=True)

    def watch(self, handle: Handle, on_exit: Callable[[Handle], None]) -> None:
        loop = asyncio.get_running_loop()
        try:
            fd = os.pidfd_open(handle.pid)
        except OSError:
            loop.call_soon(on_exit, handle)
            return
        if pid_start(handle.pid) != handle.pid_start:
            os.close(fd)
            loop.call_soon(on_exit, handle)
            return

        def fired() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            on_exit(handle)

        loop.add_reader(fd, fired)

    def exit_reason(self, handle: Handle) -> str:
        parts = []
        if Cgroups.oom_killed(handle.cgroups):
            parts.append("out of memory: the sandbox hit its memory limit and the kernel killed a process")
        end, tail = rocklet_end(Path(handle.sandbox_dir) / "run")
        parts.append(end or "the sandbox's init process was killed")
        reason = "; ".join(parts)
        return f"{reason} (last log: {tail})" if tail else reason
