"""The sandbox zygote: a Python process with the rocklet preloaded that forks one sandbox per request.

Forking a warm interpreter (copy-on-write) instead of starting a fresh one makes a sandbox start in
milliseconds and cost a few MiB. Per request (one JSON line on the control socket):

    zygote: unshare(pid) (for its next child only), fork B, setns back to its own pid namespace
      B: pid 1 of the new pid namespace, host root: joins the cgroups, unshare(mount, net, uts, ipc, cgroup),
         opens the rocklet's log and binds its socket in the run dir, forks C, maps C's user namespace and
         id-maps the root's layers for it, builds the root (an overlay: its writable layer over a read-only
         minimal one), pivots into it, installs the syscall filter on itself (no_new_privs, seccomp.py), lets C
         go, reports (its host pid, on the request's connection), then reaps orphans until C exits (the
         namespace dies with B)
      C: unshares its user namespace at once and waits for B; then root inside and an unprivileged host uid
         range outside, its own syscall filter, capabilities dropped: the rocklet, on the socket B bound

(No intermediate process between the zygote and B: every fork of this ~60 MB interpreter costs a page-table
copy, copy-on-write faults and an exit, the largest CPU costs of a sandbox start when profiled.)

For the docker runtime (`op: enter`), the rocklet goes into a container the engine has just started (its
namespaces, cgroups and limits made by the engine), instead of a fresh interpreter importing the web stack:

    zygote: fork X
      X: host root, in the host's namespaces: binds the rocklet's socket and log in the run dir (host path),
         sets the container's pid namespace for its children, forks Z, puts Z in the container's cgroups, lets
         it go, reports, then waits for Z; when Z ends, writes `exit.json` and kills the container's init, so
         the engine reports the container's death
      Z: enters the container's net, ipc, uts, cgroup and mount namespaces and (last) its user namespace: root
         inside, the container's host uid range outside; the container init's rlimits, its own syscall
         filter, the container's capabilities: the rocklet, on the socket X bound

The zygote is single-threaded and never runs an event loop, so forking it is safe. It keeps running when the
admin is killed (its own session), and so do the sandboxes: an admin restart finds both again.

Run as `python -m rock_admin.runtimes.zygote CONTROL_SOCKET`.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import importlib
import json
import os
import resource
import signal
import socket
import stat
import sys
import traceback
from typing import Any

import uvicorn

import rocklet.app
import rocklet.server
from rock_admin.runtimes import host, linux, seccomp

#: Preloaded once, before any fork, so no sandbox imports them again.
PRELOAD = (
    "rocklet.cli",
    "rocklet.auth",
    "rocklet.config",
    "uvicorn.config",
    "uvicorn.main",
    "uvicorn.server",
    "uvicorn.lifespan.on",
    "uvicorn.loops.auto",
    "uvicorn.loops.uvloop",
    "uvicorn.loops.asyncio",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.protocols.websockets.auto",
    "uvicorn.protocols.utils",
    "uvloop",
    "httptools",
    "pty",
    "tty",
    "termios",
    "asyncio.subprocess",
    "concurrent.futures.thread",
    # Litestar's lifespan opens an anyio task group, which imports anyio's asyncio backend lazily: ~5-7 ms of
    # imports in every sandbox when it is not loaded here (profiled: the largest single cost of a child).
    "anyio._backends._asyncio",
    "gem_envs",
)
for _name in PRELOAD:
    with contextlib.suppress(ImportError):
        importlib.import_module(_name)
with contextlib.suppress(Exception):
    importlib.import_module("gem_envs").make("game:Sokoban-v0-easy").close()

#: Inside a sandbox: the rocklet's private run dir (bind of the host's per-sandbox run dir).
RUN_DIR = "/run/rocklet"
SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _write_json(fd: int, obj: dict[str, Any]) -> None:
    data = (json.dumps(obj) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


def _bind(source: str, target: str, flags: int) -> None:
    """Bind `source` at `target` with mount `flags` (MS_NOSUID...): a bind takes them only on a remount."""
    linux.mount(source, target, None, linux.MS_BIND)
    linux.mount(None, target, None, linux.MS_BIND | linux.MS_REMOUNT | flags)


def _overlay_options(spec: dict[str, Any]) -> str:
    paths = [spec["mask"], spec["rootfs"], spec["upper"], spec["work"]]
    for path in paths:
        if any(c in path for c in ",:\\"):  # the option string's separators (no escaping through mount(2))
            raise OSError(f"overlay: a layer path may not contain ',', ':' or '\\': {path!r}")
    return f"lowerdir={paths[0]}:{paths[1]},upperdir={paths[2]},workdir={paths[3]}"


def _build_root(spec: dict[str, Any]) -> None:
    """In B (new mount namespace): the sandbox's root at `root_dir`, then pivot into it.

    An overlay (nosuid, nodev): the mask and the image read-only below, the sandbox's size-limited upper layer
    on top (see `rootfs`); the rocklet's interpreter paths bound read-only; a private /dev and /proc, the host's
    /sys read-only, the run dir bound nosuid, nodev, noexec."""
    root = spec["root_dir"]
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    linux.mount("overlay", root, "overlay", linux.MS_NOSUID | linux.MS_NODEV, _overlay_options(spec))
    # The mount points are in the mask; the binds stay read-only (and nosuid) whatever the overlay allows.
    for path in [*spec.get("extra_binds", []), "/sys"]:
        linux.mount(path, root + path, None, linux.MS_BIND | linux.MS_REC)
        linux.make_tree_readonly(root + path)
    # /dev: a small tmpfs with the harmless nodes, a private devpts and shm.
    dev = root + "/dev"
    linux.mount("tmpfs", dev, "tmpfs", linux.MS_NOSUID | linux.MS_NOEXEC, "size=64k,mode=755")
    for node in ("null", "zero", "full", "random", "urandom", "tty"):
        with open(f"{dev}/{node}", "w"):
            pass
        linux.mount(f"/dev/{node}", f"{dev}/{node}", None, linux.MS_BIND)
    for d in ("pts", "shm"):
        os.mkdir(f"{dev}/{d}")
    pts_flags = linux.MS_NOSUID | linux.MS_NOEXEC
    linux.mount("devpts", f"{dev}/pts", "devpts", pts_flags, "newinstance,ptmxmode=0666,mode=620")
    os.symlink("pts/ptmx", f"{dev}/ptmx")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "fd/0"), ("stdout", "fd/1"), ("stderr", "fd/2")):
        os.symlink(target, f"{dev}/{name}")
    linux.make_tree_readonly(dev)
    shm_flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC  # as Docker's /dev/shm
    linux.mount("tmpfs", f"{dev}/shm", "tmpfs", shm_flags, "size=64m,mode=1777")
    linux.mount("proc", root + "/proc", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    linux.mount(root + "/proc/sys", root + "/proc/sys", None, linux.MS_BIND)
    linux.mount(None, root + "/proc/sys", None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)
    for host_dir, inside in spec["writable"].items():
        _bind(host_dir, root + inside, linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    os.chdir(root)
    linux.pivot_root(".", ".")
    linux.umount2(".", linux.MNT_DETACH)
    os.chdir("/")


def _run_rocklet(spec: dict[str, Any], run_dir: str, listen_fd: int, userns: bool = False) -> None:
    """C: the rocklet on a Unix socket (never returns)."""
    if userns:
        # Root inside, the unprivileged host uid of the sandbox's id map outside (every capability it keeps
        # holds for its own namespace only); then no supplementary group of the host's root.
        os.setresgid(0, 0, 0)
        os.setgroups([])
        os.setresuid(0, 0, 0)
    # Not dumpable: sandbox code (same uid, same capabilities) must not read this process's memory or the
    # zygote's environ through /proc/<rocklet>/{mem,environ}: other sandboxes' specs passed through it.
    linux.set_dumpable(False)
    seccomp.install_sandbox_filter()
    if spec["isolate"]:
        linux.drop_capabilities()
    os.environ.clear()
    os.environ.update(
        {
            "PATH": SANDBOX_PATH,
            "HOME": spec.get("home", "/tmp"),
            "LANG": "C.UTF-8",
            "HOSTNAME": spec["hostname"],
            "ROCK_SANDBOX_ID": spec["sandbox_id"],
            "TMPDIR": "/tmp" if spec["isolate"] else spec["tmp_dir"],
            **spec.get("image_env", {}),
            **spec.get("env", {}),
        }
    )
    with contextlib.suppress(OSError):
        os.chdir(os.environ["HOME"])
    from rocklet.auth import ApiKeyMiddleware
    from rocklet.config import RockletConfig

    config = RockletConfig(
        auth_token=spec.get("token", ""), state_dir=f"{run_dir}/state", session_env=spec.get("env", {})
    )
    _PREBUILT.state.runtime.__init__(config)
    sys.argv = ["rocklet", "--uds", f"{run_dir}/rocklet.sock"]
    gc.enable()
    gc.set_threshold(50_000, 20, 20)  # as the rocklet's own CLI: fewer young collections per request
    if _UVICORN_CONFIG is not None and config.auth_token:
        # The server config was loaded in the zygote; only the token and the socket are this sandbox's.
        _AUTH.__init__(_PREBUILT, config.auth_token)
        _UVICORN_CONFIG.fd = listen_fd
        rocklet.server.QuietServer(_UVICORN_CONFIG).run()  # no idle tick (rocklet.server)
    else:
        app = ApiKeyMiddleware(_PREBUILT, config.auth_token) if config.auth_token else _PREBUILT
        server_config = uvicorn.Config(
            app, fd=listen_fd, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=3600
        )
        rocklet.server.QuietServer(server_config).run()
    os._exit(0)


def _create_own(path: str, append: bool = False) -> int:
    """A file at `path` in a dir the sandbox writes to (with `append`, the regular file already there, else a
    new one), never through a link the sandbox left there: B has every capability, and a link could point it
    at /proc/sysrq-trigger."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    if append:
        with contextlib.suppress(OSError):
            fd = os.open(path, flags | os.O_APPEND | os.O_NONBLOCK, 0o644)  # NONBLOCK: a FIFO must not hang B
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.set_blocking(fd, True)
                return fd
            os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return os.open(path, flags | os.O_EXCL | (os.O_APPEND if append else 0), 0o644)


CGROUP_ROOT = "/sys/fs/cgroup"
#: v1 controller names (a hierarchy's mount options hold those it was mounted with, e.g. "cpu,cpuacct").
_V1_CONTROLLERS = {
    "cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer", "net_cls", "net_prio",
    "perf_event", "hugetlb", "rdma", "misc",
}  # fmt: skip


def _mount_cgroups(joined: bool) -> None:
    """After the pivot, in B's cgroup namespace: /sys/fs/cgroup made afresh, read-only, holding only the
    hierarchies of the sandbox's limits, each rooted at the sandbox's own group (the host's tree, bound with
    the root, lists every sandbox)."""
    mounts = []  # (mount point, fs type, super options) of the cgroup file systems bound with the root
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            rest = fields[fields.index("-") + 1 :]
            if fields[4] == CGROUP_ROOT or fields[4].startswith(CGROUP_ROOT + "/"):
                mounts.append((fields[4], rest[0], rest[2].split(",")))
    if not mounts:
        return  # an image root without /sys
    flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
    if joined and any(point == CGROUP_ROOT and fstype == "cgroup2" for point, fstype, _ in mounts):
        linux.mount("cgroup2", CGROUP_ROOT, "cgroup2", flags | linux.MS_RDONLY)
        return
    linux.mount("tmpfs", CGROUP_ROOT, "tmpfs", flags, "size=16k,mode=755")
    for point, fstype, options in mounts if joined else []:
        controllers = [o for o in options if o in _V1_CONTROLLERS]
        if fstype != "cgroup" or not {"memory", "cpu", "pids"} & set(controllers):
            continue  # a hierarchy the sandbox has no group of its own in: it would show the host's
        name = os.path.basename(point)
        os.mkdir(f"{CGROUP_ROOT}/{name}")
        linux.mount(
            "cgroup", f"{CGROUP_ROOT}/{name}", "cgroup", flags | linux.MS_RDONLY, ",".join(controllers)
        )
        for controller in controllers:  # "cpu" -> "cpu,cpuacct", as hosts that co-mount them have it
            if controller != name:
                os.symlink(name, f"{CGROUP_ROOT}/{controller}")
    linux.mount(None, CGROUP_ROOT, None, linux.MS_REMOUNT | linux.MS_RDONLY | flags)


#: In the sandbox's network namespace (owned by the host's user namespace, where its root holds no
#: capability): the low ports and ICMP sockets that Docker's containers have without NET_BIND_SERVICE/NET_RAW.
USERNS_SYSCTLS = {
    "net/ipv4/ip_unprivileged_port_start": "0",
    "net/ipv4/ping_group_range": "0 2147483647",
}


def _log_to(run_dir: str) -> None:
    """stdin from /dev/null, stdout and stderr to the rocklet's log in the run dir."""
    log_fd = _create_own(f"{run_dir}/rocklet.log", append=True)
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(devnull)
    os.close(log_fd)


def _listen(run_dir: str) -> socket.socket:
    """In B, at the run dir's host path (before the root is built): the rocklet's log on stdout/stderr and its
    socket, bound and listening before anyone is told the sandbox exists (a client may connect at once: its
    request waits in the backlog until the rocklet serves it, no readiness polling)."""
    _log_to(run_dir)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(f"{run_dir}/rocklet.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    os.chdir(run_dir)  # bind by a short relative name (Unix socket paths are limited to 107 bytes)
    listener.bind("rocklet.sock")
    os.chmod("rocklet.sock", 0o600)
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


def _fork_rocklet(
    spec: dict[str, Any], listener: socket.socket, report_fd: int, userns: bool
) -> tuple[int, int, str]:
    """Fork C, which (with `userns`) unshares its user namespace at once and then waits for B to build the
    sandbox: (C's pid, the fd that lets it go on, C's host pid). C is forked early so that B can map C's
    user namespace and id-map the root's layers for it; no extra process is needed for that."""
    up_r, up_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            for fd in (report_fd, up_r, go_w):
                os.close(fd)
            if userns:
                linux.unshare(linux.CLONE_NEWUSER)
            os.write(up_w, os.readlink("/proc/self").encode())  # the host pid (B's /proc is the host's still)
            os.close(up_w)
            if os.read(go_r, 1) == b"g":  # else B gave up (and kills us) or died
                os.close(go_r)
                _run_rocklet(spec, RUN_DIR if spec["isolate"] else spec["run_dir"], listener.fileno(), userns)
        except BaseException:
            traceback.print_exc()
        os._exit(70)
    os.close(up_w)
    os.close(go_r)
    try:
        host_pid = os.read(up_r, 32).decode()
    finally:
        os.close(up_r)
    if not host_pid:  # C failed before it could answer (its traceback is in the log)
        os.close(go_w)
        os.waitpid(pid, 0)
        detail = " (unshare of its user namespace refused?)" if userns else ""
        raise OSError(errno.EPERM, f"the rocklet's process exited before it started{detail}")
    return pid, go_w, host_pid


def _map_user_namespace(spec: dict[str, Any], host_pid: str) -> dict[str, str]:
    """In B, host root: write C's id map (ids 0..size-1 inside are host ids uid..uid+size-1) and id-map the
    overlay's lower layers through it (`/proc/self/fd/N`), so the host's root-owned files are root's inside."""
    userns = spec["userns"]
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{host_pid}/{name}", "w") as f:
            f.write(f"0 {int(userns['uid'])} {int(userns['size'])}\n")
    ns_fd = os.open(f"/proc/{host_pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    layers: dict[str, str] = {}
    try:
        for key in ("mask", "rootfs"):
            layers[key] = f"/proc/self/fd/{linux.idmapped_tree(spec[key], ns_fd)}"
        for name, value in USERNS_SYSCTLS.items():
            with open(f"/proc/sys/{name}", "w") as f:
                f.write(value)
    except OSError:
        _close_layers(layers)
        raise
    finally:
        os.close(ns_fd)
    return layers


def _close_layers(layers: dict[str, str]) -> None:
    for path in layers.values():
        os.close(int(path.rsplit("/", 1)[1]))


def _init(spec: dict[str, Any], report_fd: int) -> None:
    """B: set up the root, start C, reap until C exits; write C's end to `exit.json` (never returns)."""
    run_dir = RUN_DIR if spec["isolate"] else spec["run_dir"]
    host_pid = child = 0
    go = -1
    userns, userns_error = bool((spec.get("userns") or {}).get("uid")) and spec["isolate"], ""
    try:
        # The zygote ignores SIGCHLD (auto-reaping); as pid 1, B waits for its children itself.
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        os.closerange(3, report_fd)  # the zygote's control socket and whatever else it held open
        os.closerange(report_fd + 1, _MAX_FD)
        os.setsid()
        # Our pid as the host (and the admin) sees it: /proc is still the host's here.
        host_pid = int(os.readlink("/proc/self")) if spec["isolate"] else os.getpid()
        for procs in spec.get("cgroup_procs", []):
            with open(procs, "w") as f:
                f.write("0")  # "0": the writing process (B is pid 1 in its own pid namespace)
        if spec["isolate"]:
            # The pid namespace is B's already; the cgroup one is rooted at the groups just joined.
            linux.unshare((linux.CLONE_ALL & ~linux.CLONE_NEWPID) | linux.CLONE_NEWCGROUP)
            socket.sethostname(spec["hostname"])
            linux.loopback_up()
        listener = _listen(spec["run_dir"])
        layers: dict[str, str] = {}
        try:
            child, go, c_host_pid = _fork_rocklet(spec, listener, report_fd, userns)
            if userns:
                layers = _map_user_namespace(spec, c_host_pid)
        except OSError as exc:
            # `userns: auto` where the kernel or a layer's file system cannot: host root, and the admin says why.
            if not userns or spec["userns"].get("required"):
                raise
            userns, userns_error = False, f"{type(exc).__name__}: {exc}"
            if child:
                os.close(go)
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
            child, go, _ = _fork_rocklet(spec, listener, report_fd, False)
        if spec["isolate"]:
            try:
                _build_root({**spec, **layers})
            finally:
                _close_layers(layers)
            _mount_cgroups(bool(spec.get("cgroup_procs")))
        # Once the namespaces and mounts are built, B too runs with no_new_privs and the syscall filter for
        # good (C installs its own, after entering its user namespace); a refusing kernel fails the start.
        seccomp.install_sandbox_filter()
        os.write(go, b"g")
        os.close(go)
    except BaseException as exc:
        if child:
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)
        with contextlib.suppress(BaseException):
            _write_json(
                report_fd,
                {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc(), "pid": host_pid},
            )
        os._exit(1)
    listener.close()
    reply = {"ok": True, "rocklet_pid_in_ns": child, "pid": host_pid, "userns": userns}
    with contextlib.suppress(OSError):
        _write_json(report_fd, {**reply, "userns_error": userns_error} if userns_error else reply)
    os.close(report_fd)
    # pid 1 gets no default signal actions: forward TERM/INT to the rocklet, ignore the rest.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: os.kill(child, s))
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        except InterruptedError:
            continue
        if pid == child:
            end = _end_of(status)
            with contextlib.suppress(OSError):
                fd = _create_own(f"{run_dir}/exit.json")
                _write_json(fd, end)
            os._exit(end.get("exit_code", 128 + end.get("signal", 0)))


def _end_of(status: int) -> dict[str, Any]:
    """The rocklet's end, from its wait status, as `exit.json` holds it."""
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        return {"status": status, "signal": os.WTERMSIG(status), "reason": f"rocklet killed by {name}"}
    code = os.WEXITSTATUS(status)
    return {"status": status, "exit_code": code, "reason": f"rocklet exited with code {code}"}


#: Highest fd a sandbox's init closes up to (close_range: one syscall however large).
_MAX_FD = 1 << 20
#: The zygote's own pid namespace (an fd on it), to go back to after each `unshare(CLONE_NEWPID)`.
_OWN_PID_NS = -1


def _fork_sandbox(server: socket.socket, conn: socket.socket, spec: dict[str, Any]) -> None:
    """In the zygote: fork B straight into a new pid namespace (B reports on `conn` itself)."""
    global _OWN_PID_NS
    isolate = bool(spec.get("isolate"))
    seccomp.preload()  # once in the zygote, inherited by every child
    try:
        if isolate:
            if _OWN_PID_NS < 0:
                _OWN_PID_NS = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
            # Only the zygote's *next child* goes into the new pid namespace (as its pid 1); the zygote
            # itself stays where it is, and forks into its own namespace again right after.
            linux.unshare(linux.CLONE_NEWPID)
        try:
            pid = os.fork()
        except OSError:
            if isolate:
                linux.setns(_OWN_PID_NS, linux.CLONE_NEWPID)
            raise
        if pid and isolate:  # in the zygote only (B cannot, and must not, go back)
            try:
                linux.setns(_OWN_PID_NS, linux.CLONE_NEWPID)
            except OSError as exc:
                # Never expected; a zygote whose next children would share that namespace must not go on:
                # the admin starts a new zygote when this one is gone.
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(OSError):
                    conn.sendall((json.dumps({"error": f"zygote: setns failed: {exc}"}) + "\n").encode())
                os._exit(1)
    except OSError as exc:
        with contextlib.suppress(OSError):
            conn.sendall((json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n").encode())
        return
    if pid == 0:
        try:
            server.close()
            _init(spec, conn.fileno())
        finally:
            os._exit(70)


#: The namespaces Z enters, in order: the user namespace last (entering the others needs host root).
_CONTAINER_NS = (
    ("net", linux.CLONE_NEWNET),
    ("ipc", linux.CLONE_NEWIPC),
    ("uts", linux.CLONE_NEWUTS),
    ("cgroup", linux.CLONE_NEWCGROUP),
    ("mnt", linux.CLONE_NEWNS),
    ("user", linux.CLONE_NEWUSER),
)
_RLIMITS = ("RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_CORE", "RLIMIT_MEMLOCK", "RLIMIT_STACK", "RLIMIT_FSIZE")


def _container_init(spec: dict[str, Any]) -> int:
    """The container's init by its host pid, checked to be the same process (start time) and in the
    container's cgroup (its id in the path), so a stale or foreign pid is never entered."""
    pid = int(spec["pid"])
    if host.pid_start(pid) != int(spec["pid_start"]):
        raise OSError(errno.ESRCH, f"the container's init (pid {pid}) is gone")
    with open(f"/proc/{pid}/cgroup") as f:
        if spec["container"] not in f.read():
            raise OSError(errno.EPERM, f"pid {pid} is not in the container's cgroup")
    return pid


def _enter_container(
    spec: dict[str, Any],
    limits: dict[int, tuple[int, int]],
    ns_fds: dict[str, int],
    go_r: int,
    listen_fd: int,
) -> None:
    """Z: into the container, then the rocklet (never returns); on the socket X bound, or (`port`) on TCP in
    the container's network namespace."""
    if os.read(go_r, 1) != b"g":  # X gave up, or died
        os._exit(70)
    os.close(go_r)
    for res, limit in limits.items():  # as host root still: the container's limits may be above ours
        resource.setrlimit(res, limit)
    for name, flag in _CONTAINER_NS:
        if name in ns_fds:
            linux.setns(ns_fds[name], flag)
            os.close(ns_fds[name])
        if name == "net" and spec.get("port"):
            listen_fd = socket.create_server(("0.0.0.0", int(spec["port"])), backlog=2048).detach()
    os.chdir("/")
    _run_rocklet(spec, RUN_DIR, listen_fd, userns="user" in ns_fds)


def _enter(spec: dict[str, Any], report_fd: int) -> None:
    """X: start Z in the container, report, and stand by Z until it ends (never returns)."""
    z = 0
    try:
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        os.closerange(3, report_fd)
        os.closerange(report_fd + 1, _MAX_FD)
        os.setsid()
        init = _container_init(spec)
        own = {name: os.stat(f"/proc/self/ns/{name}").st_ino for name, _ in _CONTAINER_NS}
        # Only the namespaces the container does not share with us (with `userns: off` its user one is ours).
        ns_fds = {
            name: os.open(f"/proc/{init}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            for name, _ in _CONTAINER_NS
            if os.stat(f"/proc/{init}/ns/{name}").st_ino != own[name]
        }
        pid_ns = os.open(f"/proc/{init}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        # The init's rlimits (the engine's ulimits), read here: Z's pid namespace does not name it.
        limits = {getattr(resource, r): resource.prlimit(init, getattr(resource, r)) for r in _RLIMITS}
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{spec['run_dir']}/exit.json")  # a restarted container's last end
        if spec.get("port"):  # Z listens on TCP, in the container's network namespace
            _log_to(spec["run_dir"])
            listener = socket.socket(socket.AF_UNIX)
        else:
            listener = _listen(spec["run_dir"])
        linux.setns(pid_ns, linux.CLONE_NEWPID)  # for Z: X itself stays in the host's
        go_r, go_w = os.pipe()
        z = os.fork()
        if z == 0:
            try:
                for fd in (go_w, pid_ns, report_fd):  # Z keeps only what it needs: nothing of the zygote's
                    os.close(fd)
                _enter_container(spec, limits, ns_fds, go_r, listener.fileno())
            except BaseException:
                traceback.print_exc()
            os._exit(70)
        os.close(go_r)
        for procs in spec["cgroup_procs"]:
            with open(procs, "w") as f:
                f.write(str(z))
        os.write(go_w, b"g")
        os.close(go_w)
    except BaseException as exc:
        if z:
            with contextlib.suppress(OSError):
                os.kill(z, signal.SIGKILL)
        with contextlib.suppress(BaseException):
            _write_json(report_fd, {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})
        os._exit(1)
    listener.close()
    for fd in ns_fds.values():
        os.close(fd)
    with contextlib.suppress(OSError):
        _write_json(report_fd, {"ok": True, "pid": os.getpid(), "rocklet_pid": z})
    os.close(report_fd)
    _, status = os.waitpid(z, 0)
    end = _end_of(status)
    with contextlib.suppress(OSError):
        fd = _create_own(f"{spec['run_dir']}/exit.json")
        _write_json(fd, end)
    # The container lives as long as its rocklet: its init goes too (when it is still that process).
    if host.pid_start(init) == int(spec["pid_start"]):
        with contextlib.suppress(OSError):
            os.kill(init, signal.SIGKILL)
    os._exit(0)


def _fork_enter(conn: socket.socket, spec: dict[str, Any]) -> None:
    """In the zygote: fork X (X reports on `conn` itself)."""
    seccomp.preload()
    try:
        pid = os.fork()
    except OSError as exc:
        with contextlib.suppress(OSError):
            conn.sendall((json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n").encode())
        return
    if pid == 0:
        try:
            _enter(spec, conn.fileno())
        finally:
            os._exit(70)


#: The rocklet app, built once here; each sandbox re-initialises its runtime in place (`Runtime.__init__`),
#: so a fork pays neither the app's construction nor Litestar's first-request costs.
_PREBUILT: Any = None
#: The API-key wrapper around it and uvicorn's loaded config (protocol classes, logging, lifespan), ready too.
_AUTH: Any = None
_UVICORN_CONFIG: Any = None


async def _asgi_get(app: Any, path: str, method: str = "GET", body: bytes = b"") -> None:
    """One in-process request (no sockets, no threads), to warm the app's lazy caches."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"rocklet")],
        "client": ("127.0.0.1", 1),
        "server": ("rocklet", 80),
        "state": {},
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    await app(scope, receive, send)


def _warm_up() -> None:
    """Build the rocklet app and serve a request in-process, before any fork."""
    import asyncio
    import shutil
    import tempfile

    from rocklet.config import RockletConfig

    global _PREBUILT, _AUTH, _UVICORN_CONFIG
    tmp = tempfile.mkdtemp(prefix="rock-zygote-")
    try:
        _PREBUILT = rocklet.app.create_app(RockletConfig(state_dir=tmp))
        from rocklet.auth import ApiKeyMiddleware

        _AUTH = ApiKeyMiddleware(_PREBUILT, "placeholder")
        _UVICORN_CONFIG = uvicorn.Config(
            _AUTH, fd=0, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=3600
        )
        _UVICORN_CONFIG.load()
        loop = asyncio.new_event_loop()
        try:
            for path in ("/is_alive", "/", "/version"):
                loop.run_until_complete(_asgi_get(_PREBUILT, path))
            # The first requests of every sandbox (create a session, run in it): routed, their handler
            # signatures resolved and the error path exercised with a body that is refused before anything runs
            # (no shell is started here), so each child does not pay Litestar's first-call costs again.
            for path in ("/create_session", "/run_in_session", "/execute", "/close_session"):
                loop.run_until_complete(_asgi_get(_PREBUILT, path, "POST", b"{"))
        finally:
            loop.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_id() -> str:
    """What code this zygote runs: an admin that finds an older zygote (after an upgrade) replaces it."""
    import rock_admin

    parts = [rock_admin.__version__, getattr(rocklet, "__version__", "")]
    for module in (rocklet.app, sys.modules[__name__]):
        with contextlib.suppress(OSError, TypeError):
            parts.append(str(int(os.stat(module.__file__).st_mtime)))
    return "/".join(parts)


def serve(control_path: str) -> None:
    _warm_up()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(control_path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    from rock_admin.runtimes.host import short_path

    server.bind(short_path(control_path))
    os.chmod(control_path, 0o600)
    server.listen(256)
    with open(os.path.join(os.path.dirname(control_path), "zygote.pid"), "w") as f:
        f.write(str(os.getpid()))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # sandbox inits (our children) are reaped by the kernel
    gc.collect()
    gc.freeze()  # keep the collector from touching (and un-sharing) the preloaded objects in children
    while True:
        try:
            conn, _ = server.accept()
        except InterruptedError:
            continue
        with conn:
            try:
                conn.settimeout(5)
                buf = b""
                while not buf.endswith(b"\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                spec = json.loads(buf)
                if spec.get("op") == "ping":
                    reply = {"ok": True, "pid": os.getpid(), "build": build_id()}
                    conn.sendall((json.dumps(reply) + "\n").encode())
                    continue
            except (OSError, ValueError) as exc:
                with contextlib.suppress(OSError):
                    conn.sendall((json.dumps({"error": f"bad request: {exc}"}) + "\n").encode())
                continue
            conn.settimeout(None)
            if spec.get("op") == "enter":
                _fork_enter(conn, spec)
            else:
                _fork_sandbox(server, conn, spec)


if __name__ == "__main__":
    serve(sys.argv[1])
