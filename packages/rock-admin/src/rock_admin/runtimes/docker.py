"""The `docker` runtime: each sandbox is a container made through the Docker Engine API (`docker` SDK), against
any engine that speaks it (Docker, or Podman's compatible service).

The rocklet comes from the host, not from a registry or the network: the admin's interpreter and packages are
bind-mounted read-only at their host paths (upstream's `local` mode). With `docker_rocklet: fork` (the default
where it can: the admin is root on the engine's host and its Python is not under `/usr`) the container's command
only waits, and a zygote with the rocklet preloaded forks it into the container's namespaces and cgroups once
the engine has started it (`zygote.py`, `op: enter`): no fresh interpreter importing the web stack at every
start. With `exec` the rocklet is the container's command, under the engine's init. It listens on a Unix socket in a per-sandbox host dir mounted at `/run/rocklet`
(`<state_dir>/docker/<id>/run/`), so the container needs no network (`docker_network: none`, the default);
with `bridge` it listens on TCP, published on 127.0.0.1. Containers are labelled with the admin (a hash of its
state dir) and the sandbox id: a restarted admin adopts its own, and removes those no record knows. Engine
calls block, so they run in a bounded thread pool; one events stream reports every container's death.

Containers run with the process runtime's capabilities (Docker's default set minus MKNOD) and no_new_privs; the
root is writable, as upstream's. `disk` goes to the engine as the root layer's size (StorageOpt) where its
storage driver can limit it; where it cannot (overlay on a file system without project quotas, as Podman's
storage here), /tmp becomes a tmpfs of that size instead, and the status says so. The run dir is a tmpfs of
that size too (nosuid, nodev, noexec; 0700 under a 0700 `docker/`).

Root in a container is not host root: on Podman each container gets a user namespace with a host uid range of
its own (`userns`, `userns_base`: the process runtime's ranges, recorded by the owner of the run dir), asked
for through the compatible API's `UsernsMode` (docker-py refuses any mode but `host`, so the create call is
built a level down). Docker maps user namespaces only daemon-wide (`userns-remap`): there the engine's mapping
is used, and where it maps none the status says root in the container is host root (`userns: on` refuses it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rock_admin.errors import LaunchError
from rock_admin.runtimes import linux, rootfs
from rock_admin.runtimes.base import Endpoint, Handle, Runtime, SandboxSpec
from rock_admin.runtimes.host import UDS_MAX, pid_start, python_paths, rocklet_end
from rock_admin.runtimes.userns import SIZE, UidRanges
from rock_admin.runtimes.zygote_client import ZygoteClient
from rocklet.config import SESSION_ENV_VAR

log = logging.getLogger("rock_admin.runtime.docker")

#: A fixed Engine API version (Docker ≥ 20.10, Podman ≥ 3): no /version round trip for every client made.
API_VERSION = "1.41"
PULL_POLICIES = ("never", "missing", "always")
NETWORKS = ("none", "bridge")
ROCKLET_MODES = ("auto", "fork", "exec")
#: Where the sandbox's run dir (socket, rocklet state) appears inside the container.
RUN_DIR = "/run/rocklet"
ROCKLET_PORT = 8000
LABEL_ADMIN = "rock.admin"
LABEL_SANDBOX = "rock.sandbox_id"
#: `fork` or `exec`: how the container's rocklet starts (a restarted container keeps its own way).
LABEL_ROCKLET = "rock.rocklet"
#: A forked rocklet's container command: the host's interpreter, bare (-S -I: no site, no environment), waiting.
WAITER = ["-S", "-I", "-c", "import signal; signal.pause()"]
#: How long `start` waits for the rocklet's socket to appear; the lifecycle's startup timeout rules beyond.
SOCKET_WAIT = 10.0
_CAP_NAMES = {
    0: "CHOWN", 1: "DAC_OVERRIDE", 3: "FOWNER", 4: "FSETID", 5: "KILL", 6: "SETGID", 7: "SETUID", 8: "SETPCAP",
    10: "NET_BIND_SERVICE", 13: "NET_RAW", 18: "SYS_CHROOT", 29: "AUDIT_WRITE", 31: "SETFCAP",
}  # fmt: skip
#: The capabilities a container keeps: the process runtime's set, by the engine's names.
CAPS = [_CAP_NAMES[cap] for cap in linux.KEEP_CAPS]


def admin_id(state_dir: str) -> str:
    """Names this admin's containers: admins on other state dirs (or hosts) sharing an engine leave them be."""
    return hashlib.sha256(os.path.realpath(state_dir).encode()).hexdigest()[:12]


def _rocklet_command(network: str) -> tuple[list[str], dict[str, str]]:
    """The rocklet's command line and the environment it needs, with the interpreter from the host.

    A Python outside `/usr` (pyenv, uv, a venv's base) is mounted and run as is; a system Python under `/usr`
    cannot be mounted over the image's own `/usr`, so the image's `python3` runs with the host's package dirs
    on PYTHONPATH (it must be the same minor version).
    """
    listen = (
        ["--uds", f"{RUN_DIR}/rocklet.sock"]
        if network == "none"
        else ["--host", "0.0.0.0", "--port", str(ROCKLET_PORT)]
    )
    args = ["-m", "rocklet", *listen, "--state-dir", f"{RUN_DIR}/state", "--log-level", "warning"]
    env = {"PYTHONDONTWRITEBYTECODE": "1", "HOME": "/root"}
    if _under_usr(os.path.realpath(sys.base_prefix)):
        env["PYTHONPATH"] = ":".join(p for p in python_paths() if not _under_usr(p))
        return ["python3", *args], env
    return [sys.executable, *args], env


def _memory_cgroup(pid: int) -> list[str]:
    """The memory cgroup dir of a local container's init (v1 or v2); empty when the engine is elsewhere."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        return []
    for _, controllers, path in lines:
        if "memory" in controllers.split(","):
            return [f"/sys/fs/cgroup/memory{path}"]
    unified = [path for num, controllers, path in lines if num == "0" and not controllers]
    return [f"/sys/fs/cgroup{unified[0]}"] if unified else []


def _cgroup_procs(pid: int) -> list[str]:
    """The `cgroup.procs` files of every hierarchy the local process `pid` is in (v1 and v2), by the mounts."""
    mounts: list[tuple[set[str], str, str]] = []  # (controllers, its root in the hierarchy, mount point)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            rest = fields[fields.index("-") + 1 :]
            if rest[0] == "cgroup2":
                mounts.append((set(), fields[3], fields[4]))
            elif rest[0] == "cgroup":
                mounts.append((set(rest[2].split(",")), fields[3], fields[4]))
    procs = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            wanted = set(controllers.split(",")) if controllers else set()
            for have, root, point in mounts:
                if (wanted <= have if wanted else not have) and (path + "/").startswith(
                    root.rstrip("/") + "/"
                ):
                    procs.append(
                        f"{point}/{path[len(root.rstrip('/')) :].lstrip('/')}".rstrip("/") + "/cgroup.procs"
                    )
                    break
    return [p for p in procs if os.path.exists(p)]


#: Said in the status where the engine maps no user namespace (Docker without userns-remap, `userns: off`).
HOST_ROOT = (
    "; root is host root (the engine maps no user namespace: Docker's userns-remap, or Podman with "
    "userns auto/on, gives the container an unprivileged host uid range)"
)


def userns_mode(first_uid: int) -> str:
    """Podman's `UsernsMode` for a container whose ids 0..SIZE-1 are host ids first_uid.. (uids and gids)."""
    ids = f"0:{first_uid}:{SIZE}"
    return f"auto:size={SIZE},uidmapping={ids},gidmapping={ids}"


def _root_is_host_root(pid: int) -> bool:
    """Whether uid 0 in the (local) container of `pid` is uid 0 on the host, by its uid map."""
    try:
        with open(f"/proc/{pid}/uid_map") as f:
            inside, outside, *_ = f.readline().split()
    except (OSError, ValueError):
        return False
    return inside == outside == "0"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _under_usr(path: str) -> bool:
    return path == "/usr" or path.startswith("/usr/")


class DockerRuntime(Runtime):
    name = "docker"

    def __init__(
        self,
        state_dir: str,
        docker_host: str = "",
        network: str = "none",
        concurrency: int = 8,
        userns: str = "auto",
        userns_base: int = 100_000,
        rocklet: str = "auto",
        **_ignored: Any,  # the process runtime's settings (isolation, hide_paths) mean nothing here
    ) -> None:
        import docker  # the `docker` extra: imported only when this runtime is chosen

        if network not in NETWORKS:
            raise ValueError(f"docker_network: expected one of {', '.join(NETWORKS)}, got {network!r}")
        if userns not in ("auto", "on", "off"):
            raise ValueError(f"userns: expected auto, on or off, got {userns!r}")
        if rocklet not in ROCKLET_MODES:
            raise ValueError(f"docker_rocklet: expected one of {', '.join(ROCKLET_MODES)}, got {rocklet!r}")
        self._docker = docker
        self.state_dir = Path(state_dir)
        self.sandboxes_dir = self.state_dir / "docker"
        self.sandboxes_dir.mkdir(parents=True, exist_ok=True)
        self.sandboxes_dir.chmod(0o700)  # the run dirs (the rocklet's socket and state) are the admin's alone
        self.network = network
        self.userns = userns
        self.uids = UidRanges(self.sandboxes_dir, userns_base, marker="run")
        #: Whether the engine takes a per-container uid map (Podman); asked once, at the first start.
        self._engine_maps: bool | None = None
        self.admin = admin_id(state_dir)
        self.base_url = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self.client = docker.DockerClient(
            base_url=self.base_url, version=API_VERSION, timeout=120, max_pool_size=concurrency + 2
        )
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="docker")
        self._command, self._env = _rocklet_command(network)
        why_not = self._why_no_fork()
        if rocklet == "fork" and why_not:
            raise ValueError(f"docker_rocklet: fork is not possible here: {why_not}")
        #: Whether new containers get a forked rocklet (`auto` falls back to exec for good if entering fails).
        self.rocklet = rocklet
        self.fork = rocklet != "exec" and not why_not
        self.zygote = ZygoteClient(self.state_dir / "docker-zygote")
        self._binds = [p for p in python_paths() if not _under_usr(p)]
        self._watched: dict[str, tuple[Handle, Callable[[Handle], None], asyncio.AbstractEventLoop]] = {}
        #: Containers the kernel OOM-killed in, as their cgroup's eventfd said (for engines that do not say).
        self._oom: set[str] = set()
        #: Containers `start` is waiting on, and those of them that died meanwhile.
        self._starting: set[str] = set()
        self._died: set[str] = set()
        self._lock = threading.Lock()
        self._events: Any = None
        self._events_thread: threading.Thread | None = None
        self._closed = False
        self._dir_fd = -1
        #: Why the engine cannot limit a container's root layer (StorageOpt size); empty until it refuses once.
        self._no_disk_opt = ""

    def _why_no_fork(self) -> str:
        """Why the rocklet cannot be forked into containers here (empty when it can)."""
        if os.geteuid() != 0:
            return "the admin is not root (entering a container's namespaces needs it)"
        if not self.base_url.startswith("unix://"):
            return f"the engine ({self.base_url}) is not on this host's Unix socket"
        if _under_usr(os.path.realpath(sys.base_prefix)):
            return "the admin's Python is under /usr, which the image's own /usr hides in the container"
        return ""

    async def ensure_zygote(self) -> int:
        if not self.fork:
            return 0
        self.zygote.directory.mkdir(mode=0o700, exist_ok=True)
        return await self.zygote.ensure()

    def stop_zygote(self) -> None:
        self.zygote.stop()

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _engine_error(self, exc: Exception) -> str:
        explanation = getattr(exc, "explanation", None)
        return str(explanation or exc)

    # ------------------------------------------------------------------ start

    async def start(self, spec: SandboxSpec) -> Handle:
        self._follow()
        handle, enter = await self._call(self._start, spec)
        if enter is not None:
            reply = await self._enter(enter)
            if "error" in reply:
                await self._call(self.remove, handle)
                if not self.fork_required:
                    # `auto`: this host refuses (an LSM, an engine elsewhere); the rocklet is the command from now on.
                    log.warning("forking the rocklet into a container failed, using exec: %s", reply["error"])
                    self.fork = False
                    return await self.start(spec)
                raise LaunchError(f"could not start the rocklet in the container: {reply['error']}")
        if handle.uds:
            await self._socket_ready(handle)
        return handle

    @property
    def fork_required(self) -> bool:
        return self.rocklet == "fork"

    async def _enter(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.zygote.ask(payload)
        except (OSError, ValueError, LaunchError) as exc:
            return {"error": f"the zygote: {exc}"}

    async def _socket_ready(self, handle: Handle) -> None:
        """Wait for the rocklet's socket (a stat every 5 ms) or the container's death: the lifecycle's first
        probe then finds it listening, instead of backing off to 100 ms between tries while it boots."""
        self._starting.add(handle.container)
        deadline = time.monotonic() + SOCKET_WAIT
        try:
            while not os.path.exists(handle.uds) and handle.container not in self._died:
                if time.monotonic() > deadline:
                    return
                await asyncio.sleep(0.005)
        finally:
            self._starting.discard(handle.container)
            self._died.discard(handle.container)

    def _start(self, spec: SandboxSpec) -> tuple[Handle, dict[str, Any] | None]:
        """Create (or restart) and start the container; with a forked rocklet, the zygote's `enter` request."""
        errors = self._docker.errors
        if spec.pull not in PULL_POLICIES:
            raise LaunchError(f"pull: expected one of {', '.join(PULL_POLICIES)}, got {spec.pull!r}")
        image = self._image(spec.image.name, spec.pull)
        sdir = self.sandboxes_dir / spec.sandbox_id
        run_dir = sdir / "run"
        os.makedirs(sdir, mode=0o700, exist_ok=True)
        first_uid = self._first_uid(spec.sandbox_id)
        self._run_dir(run_dir, spec.disk_bytes, first_uid)
        with contextlib.suppress(FileNotFoundError):
            (run_dir / "rocklet.sock").unlink()
        name = f"rock-{self.admin}-{spec.sandbox_id}"
        container = None
        try:
            container = self._existing(name) or self._create(spec, image, name, run_dir, first_uid)
            container.start()
            container.reload()
        except errors.DockerException as exc:
            if container is not None:  # no handle will name it: it goes now
                with contextlib.suppress(errors.DockerException):
                    self._remove_container(container.id)
            raise LaunchError(f"the engine could not start the container: {self._engine_error(exc)}") from exc
        state = container.attrs.get("State", {})
        pid = int(state.get("Pid") or 0)
        forked = container.labels.get(LABEL_ROCKLET) == "fork"
        host_root = bool(pid) and _root_is_host_root(pid)
        if host_root and self.userns == "on":
            with contextlib.suppress(errors.DockerException):
                self._remove_container(container.id)
            raise LaunchError(
                "userns is 'on' but root in the container is host root: the engine maps no user namespace "
                "(Docker: set userns-remap in its daemon.json; or use Podman, or userns: auto)"
            )
        url = ""
        if self.network == "bridge":
            ports = container.attrs["NetworkSettings"]["Ports"].get(f"{ROCKLET_PORT}/tcp") or []
            if not ports:
                raise LaunchError(f"the engine published no port for the rocklet ({ROCKLET_PORT}/tcp)")
            url = f"http://127.0.0.1:{ports[0]['HostPort']}"
        handle = Handle(
            sandbox_id=spec.sandbox_id,
            uds=str(run_dir / "rocklet.sock") if self.network == "none" else "",
            url=url,
            pid=pid,
            pid_start=pid_start(pid) if pid else 0,
            sandbox_dir=str(sdir),
            isolation=f"container {container.short_id} ({self.base_url}), network {self.network}"
            + (f"; root is host uid {first_uid} (a range of {SIZE} of its own)" if first_uid else "")
            + (HOST_ROOT if host_root else ""),
            limits_enforced=True,
            limits_message="memory, cpus and pids limits set on the container by the engine; "
            + self._disk_message(container.attrs.get("HostConfig", {})),
            cgroups=_memory_cgroup(pid) if pid else [],
            container=container.id,
        )
        if not forked:
            return handle, None
        return handle, {
            "op": "enter",
            "container": container.id,
            "pid": pid,
            "pid_start": handle.pid_start,
            "cgroup_procs": _cgroup_procs(pid),
            "run_dir": str(run_dir),
            "port": ROCKLET_PORT if self.network == "bridge" else 0,
            "sandbox_id": spec.sandbox_id,
            "hostname": spec.sandbox_id[:63],
            "home": "/root",
            "isolate": True,
            "token": spec.token,
            "env": spec.env,
            "image_env": dict(
                e.split("=", 1) for e in container.attrs["Config"].get("Env") or [] if "=" in e
            ),
        }

    def _image(self, name: str, pull: str) -> Any:
        """The engine's image for `name` under the pull policy (`missing`: pull only when not there)."""
        errors = self._docker.errors
        if pull != "always":
            try:
                return self.client.images.get(name)
            except errors.ImageNotFound as exc:
                if pull == "never":
                    raise LaunchError(
                        f"image {name!r} is not on the engine and pull is 'never': {self._engine_error(exc)}"
                    ) from exc
            except errors.DockerException as exc:
                raise LaunchError(f"the engine at {self.base_url}: {self._engine_error(exc)}") from exc
        try:
            return self.client.images.pull(name)
        except errors.DockerException as exc:
            raise LaunchError(f"image {name!r}: pull failed: {self._engine_error(exc)}") from exc

    def _first_uid(self, sandbox_id: str) -> int:
        """The host uid the container's root is (its own range), or 0 where the engine's mapping rules."""
        if self.userns == "off":
            return 0
        if self._engine_maps is None:
            components = self.client.version().get("Components") or []
            self._engine_maps = any("podman" in str(c.get("Name", "")).lower() for c in components)
            if not self._engine_maps:
                log.warning(
                    "the engine maps user namespaces only daemon-wide (userns-remap): containers get its mapping"
                )
        return self.uids.first_uid(sandbox_id) if self._engine_maps else 0

    @staticmethod
    def _run_dir(run_dir: Path, disk_bytes: int, owner: int) -> None:
        """A tmpfs (nosuid, nodev, noexec: the container's bind of it is too) of the sandbox's disk size; a plain
        dir where the admin may not mount (not root). Owned by the container's root where that is not host root
        (the dir under the mount too: its owner records the sandbox's uid range while nothing is mounted)."""
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if owner:
            os.chown(run_dir, owner, owner)
        try:
            rootfs.mount_tmpfs(run_dir, disk_bytes)
        except PermissionError:
            return
        if owner:
            os.chown(run_dir, owner, owner)

    def _disk_message(self, host_config: dict[str, Any]) -> str:
        if (host_config.get("StorageOpt") or {}).get("size"):
            return "disk: the root layer's size, set by the engine"
        if self._no_disk_opt:
            return (
                f"disk: not on the root layer (the engine: {self._no_disk_opt}); /tmp and /run/rocklet are "
                "tmpfs of the disk size"
            )
        return "disk: no limit"

    def _existing(self, name: str) -> Any:
        """A container of a stopped sandbox being restarted: started again, with its files."""
        with contextlib.suppress(self._docker.errors.NotFound):
            return self.client.containers.get(name)
        return None

    def _create(self, spec: SandboxSpec, image: Any, name: str, run_dir: Path, first_uid: int) -> Any:
        """Create the container, with the root layer's size where the engine can limit it (else /tmp a tmpfs)."""
        if spec.disk_bytes and not self._no_disk_opt:
            try:
                return self._create_with(
                    spec, image, name, run_dir, first_uid, {"storage_opt": {"size": str(spec.disk_bytes)}}
                )
            except self._docker.errors.APIError as exc:
                reason = self._engine_error(exc)
                if "storage-opt" not in reason and "storage_opt" not in reason.lower():
                    raise
                self._no_disk_opt = reason.rsplit(": ", 1)[-1][:300]
                log.info("the engine cannot limit a container's root layer: %s", self._no_disk_opt)
        extra = {"tmpfs": {"/tmp": f"rw,exec,nosuid,nodev,size={spec.disk_bytes}"}} if spec.disk_bytes else {}
        return self._create_with(spec, image, name, run_dir, first_uid, extra)

    def _create_with(
        self, spec: SandboxSpec, image: Any, name: str, run_dir: Path, first_uid: int, extra: dict[str, Any]
    ) -> Any:
        mounts = [self._docker.types.Mount(RUN_DIR, str(run_dir), type="bind")]
        if (
            self.fork
        ):  # the rocklet comes later, from the zygote (its token too: not in the container's environ)
            entrypoint, command, env = [sys.executable], WAITER, dict(self._env)
        else:
            entrypoint, command = self._command[:1], self._command[1:]
            env = {**self._env, "ROCKLET_AUTH_TOKEN": spec.token}
        mounts += [self._docker.types.Mount(p, p, type="bind", read_only=True) for p in self._binds]
        kwargs: dict[str, Any] = dict(extra)
        if self.network == "bridge":
            kwargs["ports"] = {f"{ROCKLET_PORT}/tcp": ("127.0.0.1", None)}
        # docker-py's own conversion of `containers.create` arguments, so that UsernsMode can be set after it.
        from docker.models.containers import _create_container_args

        args = _create_container_args(
            dict(
                image=image.id,
                version=API_VERSION,
                entrypoint=entrypoint,
                command=command,
                name=name,
                hostname=spec.sandbox_id[:63],
                labels={
                    LABEL_ADMIN: self.admin,
                    LABEL_SANDBOX: spec.sandbox_id,
                    LABEL_ROCKLET: "fork" if self.fork else "exec",
                },
                environment={
                    **env,
                    **spec.env,
                    SESSION_ENV_VAR: json.dumps(spec.env),  # the start env, for the rocklet's bash sessions
                },
                mounts=mounts,
                network_mode=self.network,
                init=True,
                mem_limit=spec.memory_bytes,
                memswap_limit=spec.memory_bytes,  # no swap: the limit is the limit
                nano_cpus=int(spec.cpus * 1e9),
                pids_limit=spec.pids_max,
                cap_drop=["ALL"],
                cap_add=CAPS,
                security_opt=["no-new-privileges"],
                working_dir="/root",
                detach=True,
                **kwargs,
            )
        )
        if first_uid:
            args["host_config"]["UsernsMode"] = userns_mode(first_uid)
        return self.client.containers.get(self.client.api.create_container(**args)["Id"])

    def _remove_container(self, container: str) -> None:
        """Remove a container and its anonymous volumes; gone already is removed."""
        try:
            self.client.api.remove_container(container, force=True, v=True)
        except self._docker.errors.NotFound:
            return
        except self._docker.errors.APIError:
            # Podman 4.3 may answer EBUSY (its shm dir) for a user-namespaced container it did remove.
            if self._state(container):
                raise

    # ------------------------------------------------------------------ stop / remove / inspect

    async def stop(self, handle: Handle) -> None:
        await self._call(self._stop, handle)

    def _stop(self, handle: Handle) -> None:
        errors = self._docker.errors
        try:
            container = self.client.containers.get(handle.container)
            if container.status in ("running", "paused", "created"):
                container.kill()
            container.wait(condition="not-running", timeout=10)
        except errors.NotFound:
            return
        except errors.APIError as exc:
            if exc.status_code != 409:  # 409: it stopped by itself meanwhile
                log.warning("stopping container %s: %s", handle.container, self._engine_error(exc))

    def remove(self, handle: Handle) -> None:
        self._oom.discard(handle.container)
        if handle.container:
            self._remove_container(handle.container)
        if handle.sandbox_dir and Path(handle.sandbox_dir).parent == self.sandboxes_dir:
            rootfs.unmount(Path(handle.sandbox_dir) / "run")
            shutil.rmtree(handle.sandbox_dir, ignore_errors=True)
        self.uids.release(handle.sandbox_id)

    def _state(self, container: str) -> dict[str, Any]:
        """The container's `State` from the engine; empty when it is gone."""
        try:
            return self.client.api.inspect_container(container).get("State", {})
        except self._docker.errors.NotFound:
            return {}

    def is_running(self, handle: Handle) -> bool:
        return bool(handle.container) and bool(self._state(handle.container).get("Running"))

    def endpoint(self, handle: Handle) -> Endpoint:
        """The socket path, through a directory fd when over sun_path's 108 bytes; the URL with `bridge`."""
        if not handle.uds:
            return Endpoint(url=handle.url)
        if len(handle.uds) <= UDS_MAX:
            return Endpoint(uds=handle.uds)
        if self._dir_fd < 0:
            self._dir_fd = os.open(self.sandboxes_dir, os.O_PATH | os.O_DIRECTORY)
        return Endpoint(uds=f"/proc/self/fd/{self._dir_fd}/{os.path.relpath(handle.uds, self.sandboxes_dir)}")

    def exit_reason(self, handle: Handle) -> str:
        state = self._state(handle.container)
        if not state:
            return "the sandbox's container is gone (removed outside the admin)"
        parts = []
        if state.get("OOMKilled") or handle.container in self._oom:
            parts.append("out of memory: the container hit its memory limit and the kernel killed a process")
        # A forked rocklet's end is in the run dir (its stand-by then kills the container's init).
        end, tail = rocklet_end(Path(handle.sandbox_dir) / "run") if handle.sandbox_dir else ("", "")
        code = int(state.get("ExitCode") or 0)
        if end:
            parts.append(end)
        elif code > 128:
            parts.append(f"rocklet killed by {_signal_name(code - 128)} (exit code {code})")
        else:
            parts.append(f"rocklet exited with code {code}")
        if state.get("Error"):
            parts.append(f"engine: {state['Error']}")
        reason = "; ".join(parts)
        if not tail:
            with contextlib.suppress(self._docker.errors.DockerException):
                tail = self.client.api.logs(handle.container, tail=20).decode(errors="replace")[-500:].strip()
        return f"{reason} (last log: {tail})" if tail else reason

    # ------------------------------------------------------------------ exits

    def watch(self, handle: Handle, on_exit: Callable[[Handle], None]) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            self._watched[handle.container] = (handle, on_exit, loop)
        self._follow()
        # It may have died before the watch began: the events stream would not say so.
        loop.run_in_executor(self._pool, self._check, handle.container)
        self._watch_oom(handle, loop)

    def _watch_oom(self, handle: Handle, loop: asyncio.AbstractEventLoop) -> None:
        """cgroup v1: an eventfd the kernel signals on the container's OOM kills (and on the cgroup's removal).
        Podman there reports no OOMKilled, and the cgroup is gone by the time the death is reported."""
        oom_control = [os.path.join(d, "memory.oom_control") for d in handle.cgroups]
        if not oom_control or not os.path.exists(oom_control[0]):
            return
        try:
            efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            ofd = os.open(oom_control[0], os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            with open(os.path.join(handle.cgroups[0], "cgroup.event_control"), "w") as f:
                f.write(f"{efd} {ofd}")
        except OSError:
            os.close(efd)
            os.close(ofd)
            return

        def signalled() -> None:
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(efd)
            # The kernel signals an OOM before it kills (`oom_kill` may not count it yet), and the removal
            # after the cgroup's dir is gone: a signal while the dir exists is an OOM.
            if os.path.isdir(handle.cgroups[0]):
                self._oom.add(handle.container)
            else:  # removed with the container: nothing more to hear
                loop.remove_reader(efd)
                os.close(efd)
                os.close(ofd)

        loop.add_reader(efd, signalled)

    def _check(self, container: str) -> None:
        if container in self._watched and not self._state(container).get("Running"):
            self._fire(container)

    def _fire(self, container: str) -> None:
        with self._lock:
            entry = self._watched.pop(container, None)
        if entry is not None:
            handle, on_exit, loop = entry
            with contextlib.suppress(RuntimeError):  # the loop closed: the admin is shutting down
                loop.call_soon_threadsafe(on_exit, handle)

    def _follow(self) -> None:
        """Start the events thread, once."""
        with self._lock:
            if self._events_thread is None:
                self._events_thread = threading.Thread(
                    target=self._follow_events, name="docker-events", daemon=True
                )
                self._events_thread.start()

    def _follow_events(self) -> None:
        """One stream of this admin's container deaths; on a broken stream, reconnect and re-check every
        watched container (one may have died meanwhile)."""
        # Podman's compatible service ignores an `event` filter: deaths are picked out here.
        filters = {"type": "container", "label": f"{LABEL_ADMIN}={self.admin}"}
        while not self._closed:
            try:
                client = self._docker.DockerClient(base_url=self.base_url, version=API_VERSION, timeout=None)
                self._events = client.events(decode=True, filters=filters)
                for container in list(self._watched):
                    self._check(container)
                for event in self._events:
                    if event.get("Action") == "die":
                        container = event.get("id") or event.get("Actor", {}).get("ID", "")
                        if container in self._starting:
                            self._died.add(container)
                        self._fire(container)
            except Exception as exc:  # the engine restarted, the connection dropped...
                if self._closed:
                    return
                log.warning("docker events stream broke (%s); reconnecting", exc)
                threading.Event().wait(1.0)

    # ------------------------------------------------------------------ restart, shutdown

    async def remove_orphans(self, known: set[str]) -> list[str]:
        return await self._call(self._remove_orphans, known)

    def _remove_orphans(self, known: set[str]) -> list[str]:
        removed = []
        try:
            ours = self.client.containers.list(all=True, filters={"label": f"{LABEL_ADMIN}={self.admin}"})
        except Exception as exc:  # requests' connection errors as well as the SDK's own
            raise LaunchError(
                f"cannot reach the container engine at {self.base_url} (docker_host): {self._engine_error(exc)}"
            ) from exc
        for container in ours:
            sandbox_id = container.labels.get(LABEL_SANDBOX, "")
            if sandbox_id not in known:
                self._remove_container(container.id)
                if sandbox_id:
                    rootfs.unmount(self.sandboxes_dir / sandbox_id / "run")
                    shutil.rmtree(self.sandboxes_dir / sandbox_id, ignore_errors=True)
                    self.uids.release(sandbox_id)
                removed.append(sandbox_id or container.id)
        if removed:
            log.info("removed %d orphan containers", len(removed), extra={"sandboxes": removed})
        return removed

    async def aclose(self) -> None:
        self._closed = True
        if self._events is not None:
            with contextlib.suppress(Exception):
                self._events.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1
