"""Attacks from inside a sandbox (issue 11's probe), each a test that failed before its fix."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import platform
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from rock_admin.runtimes import linux, seccomp
from rock_admin.testing import KEYRING_PROBE, in_sandbox_python, ok, run, running_admin, start_sandbox

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the process runtime's namespaces need root")


@pytest.fixture
def sandbox(http: httpx.Client):
    sid = start_sandbox(http)
    ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
    yield sid
    http.post("/stop", json={"sandbox_id": sid})
    http.post("/delete", json={"sandbox_id": sid})


def _wait_failed(http: httpx.Client, sid: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = http.get("/get_status", params={"sandbox_id": sid}).json()["result"]
        if status.get("state") == "stopped" and status.get("failure_reason"):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


# --- the admin never follows a path the sandbox controls ---


@needs_root
def test_exit_reason_does_not_follow_symlinks_planted_in_the_run_dir(tmp_path: Path) -> None:
    """The sandbox swaps its log and exit.json for links to host files, then kills its rocklet: the admin's
    failure reason must show neither file (it used to show the log link's tail). Sandbox root is host root
    here (`userns: off`, as where the kernel cannot id-map): with a user namespace it cannot swap the log."""
    with running_admin(tmp_path / "admin", userns="off") as admin, admin.client() as http:
        sid = start_sandbox(http)
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        _plant_links_and_die(http, sid, tmp_path)


def _plant_links_and_die(http: httpx.Client, sandbox: str, tmp_path: Path) -> None:
    secret_log = tmp_path / "other-sandbox-secret.log"
    secret_log.write_text("SECRET-LOG-7f3a\n")
    secret_json = tmp_path / "other-sandbox-state.json"
    secret_json.write_text(json.dumps({"reason": "SECRET-JSON-9c1d"}))
    attack = f"ln -sf {secret_log} /run/rocklet/rocklet.log && ln -sf {secret_json} /run/rocklet/exit.json"
    assert run(http, sandbox, attack + " && readlink /run/rocklet/rocklet.log")["output"].strip() == str(
        secret_log
    )
    with contextlib.suppress(httpx.HTTPError):  # the rocklet dies under this request (the session's parent)
        body = {"sandbox_id": sandbox, "session": "s", "command": "kill -9 $PPID", "timeout": 10}
        http.post("/run_in_session", json=body)
    status = _wait_failed(http, sandbox)
    reason = status["failure_reason"]
    assert "SECRET" not in reason, reason
    assert "rocklet killed by SIGKILL" in reason, reason  # the sandbox's own exit.json, written anew


@needs_root
def test_exit_reason_reads_only_what_the_init_wrote(tmp_path: Path) -> None:
    """exit.json counts only as the sandbox's init (the admin's uid) wrote it: under a user namespace the
    sandbox may make one (its run dir is sticky, the name free until B writes), e.g. after B was OOM-killed."""
    from rock_admin.runtimes.base import Handle
    from rock_admin.runtimes.process import ProcessRuntime

    runtime = ProcessRuntime(str(tmp_path / "state"), isolation="none")
    run_dir = tmp_path / "sandbox" / "run"
    run_dir.mkdir(parents=True)
    handle = Handle(sandbox_id="x", sandbox_dir=str(run_dir.parent))
    exit_json = run_dir / "exit.json"
    exit_json.write_text(json.dumps({"reason": "rocklet killed by SIGKILL"}))
    assert runtime.exit_reason(handle) == "rocklet killed by SIGKILL"
    exit_json.write_text(json.dumps({"reason": "FAKE: out of memory, restart me elsewhere"}))
    os.chown(exit_json, 100_000, 100_000)  # as a sandbox's root writes it
    assert runtime.exit_reason(handle) == "the sandbox's init process was killed"
    exit_json.unlink()
    os.mkfifo(exit_json)  # never blocks the admin
    (run_dir / "rocklet.log").write_bytes(b"x" * 100_000 + b"\nlast words")
    assert (
        runtime.exit_reason(handle)
        == "the sandbox's init process was killed (last log: " + "x" * 489 + "\nlast words)"
    )


@needs_root
def test_sandbox_cannot_swap_its_socket_for_another(http: httpx.Client, two) -> None:
    """The admin connects to `run/rocklet.sock` on the host: a sandbox that replaced it with a link to another
    socket (another sandbox's, the engine's) would have the admin send its calls there."""
    a, b = two
    _needs_userns(ok(http.get("/get_status", params={"sandbox_id": a}))["isolation"])  # type: ignore[index]
    other = ok(http.get("/get_status", params={"sandbox_id": b}))["metadata"]["uds"]  # type: ignore[index]
    swap = (
        f"ln -sf {other} /run/rocklet/evil.sock && mv -f /run/rocklet/evil.sock /run/rocklet/rocklet.sock;"
        " rm -f /run/rocklet/rocklet.sock; ln -sf /etc/hostname /run/rocklet/rocklet.log; ls -l /run/rocklet"
    )
    listing = run(http, a, swap)["output"]
    assert "rocklet.sock ->" not in listing and "rocklet.log ->" not in listing, listing
    # What the admin connects to is still the socket B bound, and it is still sandbox A's rocklet.
    uds = ok(http.get("/get_status", params={"sandbox_id": a}))["metadata"]["uds"]  # type: ignore[index]
    assert stat.S_ISSOCK(os.lstat(uds).st_mode)
    assert run(http, a, "hostname")["output"].strip() == a[:63]


@needs_root
@pytest.mark.parametrize("userns", ["off", "auto"])
def test_admin_secrets_not_readable_through_the_rocklets_proc(tmp_path: Path, userns: str) -> None:
    """The rocklet is a fork of the zygote, whose environ was the admin's (API keys in ROCK_ADMIN_API_KEYS):
    sandbox code, the rocklet's uid and capabilities, read it in /proc/<rocklet>/environ (and its memory)."""
    key = f"admin-key-{tmp_path.name[-12:]}"
    with (
        running_admin(tmp_path / "admin", api_keys=key, userns=userns) as admin,
        admin.client(headers={"X-API-Key": key}) as http,
    ):
        sid = start_sandbox(http)
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        probe = (  # the patterns written so that grep's own cmdline does not match them
            "for p in /proc/[0-9]*; do cat $p/environ $p/cmdline; done 2>/dev/null | tr '\\0' '\\n'"
            " | grep -c 'ROCK_ADMIN[_]'; grep -c 'admin-ke[y]' /proc/$PPID/mem 2>&1 | tail -1;"
            " head -c1 /proc/$PPID/environ"
        )
        seen = run(http, sid, probe + " 2>&1")["output"]
    lines = seen.strip().splitlines()
    assert lines[0] == "0" and key not in seen, seen
    assert "Permission denied" in lines[1] and "Permission denied" in lines[2], seen


# --- seccomp, applied to every sandbox ---


@needs_root
@pytest.mark.skipif(platform.machine() not in seccomp.ARCHES, reason="no syscall table for this architecture")
def test_kernel_keyring_is_closed_to_sandboxes(http: httpx.Client, two) -> None:
    """A key added in sandbox A was readable in B and on the host (keys are not namespaced)."""
    a, b = two
    nrs = seccomp.ARCHES[platform.machine()].syscalls
    probe = KEYRING_PROBE.format(add_key=nrs["add_key"], request_key=nrs["request_key"])
    desc = f"rock-escape-{a[:8]}"
    assert in_sandbox_python(http, a, probe, "add", desc) == {"add_key": "EPERM"}
    assert in_sandbox_python(http, b, probe, "get", desc) == {"request_key": "EPERM"}
    with contextlib.suppress(OSError):  # no /proc/keys: the kernel has no keyring at all
        assert desc not in Path("/proc/keys").read_text()


@needs_root
def test_syscall_filter_in_a_sandbox_and_workloads_still_run(http: httpx.Client, sandbox: str) -> None:
    status = run(http, sandbox, "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status")["output"].split()
    assert status == ["NoNewPrivs:", "1", "Seccomp:", "2"], status
    for attack in ("unshare -U true", "unshare -m true", "unshare -n true", "mount -t tmpfs x /tmp"):
        assert run(http, sandbox, attack + " 2>&1")["exit_code"] != 0, attack
    workload = textwrap.dedent(
        """
        set -e
        cd $HOME && mkdir -p proj/pkg && echo 'print(6 * 7)' > proj/pkg/main.py
        tar czf proj.tgz proj && rm -rf proj && tar xzf proj.tgz && cp -r proj proj2 && mv proj2 proj3
        ln -s proj3/pkg link && chmod 600 link/main.py && python3 link/main.py
        python3 -c 'import threading, subprocess, sqlite3, concurrent.futures as cf
        with cf.ThreadPoolExecutor(4) as ex: print(sum(ex.map(lambda x: x, range(5))))
        print(subprocess.run(["bash", "-c", "echo sub | tr a-z A-Z"], capture_output=True, text=True).stdout.strip())
        print(sqlite3.connect(":memory:").execute("select 1+1").fetchone()[0])'
        (sleep 0.01 &) ; wait ; echo done | cat
        """
    )
    result = run(http, sandbox, workload, timeout=60)
    assert result["exit_code"] == 0 and result["output"].split() == ["42", "10", "SUB", "2", "done"], result


# --- a private cgroup namespace ---


@needs_root
def test_cgroup_tree_inside_lists_no_sandbox_ids(http: httpx.Client, two) -> None:
    """Inside, /proc/self/cgroup and /sys/fs/cgroup listed every sandbox id on the host."""
    a, b = two
    status = ok(http.get("/get_status", params={"sandbox_id": a}))
    if not status["limits_enforced"]:  # type: ignore[index]
        pytest.skip(f"cgroups not writable here: {status['limits_message']}")  # type: ignore[index]
    seen = run(http, a, "cat /proc/self/cgroup; find /sys/fs/cgroup -maxdepth 4 2>/dev/null | head -2000")
    assert "memory:/" in seen["output"] or "0::/" in seen["output"], seen["output"]  # it ran
    for sid in (a, b):
        assert sid not in seen["output"], seen["output"]
    assert "rock-admin" not in seen["output"], seen["output"]
    # The sandbox's own limits are still readable where programs look for them, and not writable.
    limit = run(
        http,
        a,
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
    )
    assert limit["output"].strip() == str(512 * 1024 * 1024), limit
    raise_it = "echo 1073741824 > /sys/fs/cgroup/memory/memory.limit_in_bytes || echo max > /sys/fs/cgroup/memory.max"
    assert run(http, a, raise_it + " 2>/dev/null")["exit_code"] != 0


# --- sandbox root is not host root (user namespace) ---


def _host_ids(pid: int) -> tuple[list[int], list[int]]:
    """The real, effective, saved and fs uids and gids of a process, as the host sees them."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return [int(x) for x in fields["Uid"].split()], [int(x) for x in fields["Gid"].split()]


def _sandbox_processes(http: httpx.Client, sid: str) -> tuple[int, Path]:
    """The host pid of the sandbox's rocklet, and the sandbox's dir on the host."""
    status = ok(http.get("/get_status", params={"sandbox_id": sid}))
    init = status["metadata"]["pid"]  # type: ignore[index]
    rocklet = int(Path(f"/proc/{init}/task/{init}/children").read_text().split()[0])
    return rocklet, Path(status["metadata"]["uds"]).parent.parent  # type: ignore[index]


@needs_root
def test_sandbox_root_is_an_unprivileged_host_uid(http: httpx.Client, two) -> None:
    a, b = two
    status = ok(http.get("/get_status", params={"sandbox_id": a}))
    _needs_userns(status["isolation"])  # type: ignore[index]
    host_uids = []
    for sid in (a, b):
        rocklet, _ = _sandbox_processes(http, sid)
        uids, gids = _host_ids(rocklet)
        assert 0 not in uids and 0 not in gids, (uids, gids)
        assert len(set(uids)) == 1 and uids == gids
        host_uids.append(uids[0])
        # The session's shell too (the rocklet's child), and what it runs.
        shell = int(Path(f"/proc/{rocklet}/task/{rocklet}/children").read_text().split()[0])
        assert _host_ids(shell)[0] == uids
    assert host_uids[0] != host_uids[1]  # one range per sandbox
    # Inside: root, with the capability set a sandbox always had (Docker's default less MKNOD).
    caps = sum(1 << cap for cap in linux.KEEP_CAPS)
    inside = run(http, a, "id -u; id -g; grep CapEff /proc/self/status")["output"].split()
    assert inside == ["0", "0", "CapEff:", f"{caps:016x}"], inside
    # Root's powers hold over its own files: chown, a low port, writing the (overlay) root.
    owned = "touch /tmp/f && chown 1000:1000 /tmp/f && stat -c %u:%g /tmp/f && touch /etc/userns-probe"
    assert run(http, a, owned)["output"].split() == ["1000:1000"]
    bind = 'python3 -c \'import socket; socket.socket().bind(("127.0.0.1", 80)); print("bound")\''
    assert run(http, a, bind)["output"].strip() == "bound"


@needs_root
def test_planted_setuid_file_gives_the_host_no_root(http: httpx.Client, sandbox: str) -> None:
    """A `chmod 4755` bash planted inside ran on the host with euid 0: now it is owned by the sandbox's host
    uid, so whoever runs it gets that uid at most."""
    _needs_userns(ok(http.get("/get_status", params={"sandbox_id": sandbox}))["isolation"])  # type: ignore[index]
    assert run(http, sandbox, "cp /bin/bash /tmp/rootbash && chmod 4755 /tmp/rootbash")["exit_code"] == 0
    rocklet, sdir = _sandbox_processes(http, sandbox)
    planted = next(p for p in sdir.rglob("rootbash") if p.is_file())
    st = planted.stat()
    assert st.st_mode & 0o4000 and st.st_uid == _host_ids(rocklet)[0][0] != 0
    # Run it on the host as nobody from a plain dir (the sandbox's own dirs are nosuid, noexec on the host).
    import shutil
    import tempfile

    plain = [
        d
        for d in (tempfile.gettempdir(), "/var/tmp")
        if not os.statvfs(d).f_flag & (os.ST_NOSUID | os.ST_NOEXEC)
    ]
    if not plain:
        pytest.skip("no host dir here honours setuid bits and exec (all nosuid or noexec)")
    where = Path(tempfile.mkdtemp(prefix="rock-setuid-", dir=plain[0]))
    try:
        where.chmod(0o755)
        copy = where / "rootbash"
        shutil.copyfile(planted, copy)
        os.chown(copy, st.st_uid, st.st_gid)
        os.chmod(copy, st.st_mode & 0o7777)
        result = subprocess.run(
            [str(copy), "-p", "-c", "echo $EUID"], user=65534, capture_output=True, text=True, timeout=30
        )
        assert result.stdout.strip() == str(st.st_uid), result
    finally:
        shutil.rmtree(where)


@needs_root
def test_restart_keeps_the_sandbox_uid_range(http: httpx.Client, sandbox: str) -> None:
    before = _host_ids(_sandbox_processes(http, sandbox)[0])[0][0]
    assert run(http, sandbox, "mkdir -p $HOME/keep && echo kept > $HOME/keep/f")["exit_code"] == 0
    ok(http.post("/stop", json={"sandbox_id": sandbox}))
    ok(http.post("/restart", json={"sandbox_id": sandbox}))
    deadline = time.monotonic() + 20
    while ok(http.get("/get_status", params={"sandbox_id": sandbox}))["state"] != "running":  # type: ignore[index]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert _host_ids(_sandbox_processes(http, sandbox)[0])[0][0] == before
    ok(http.post("/create_session", json={"sandbox_id": sandbox, "session": "s"}))
    kept = run(http, sandbox, "stat -c %u $HOME/keep/f && echo more >> $HOME/keep/f && cat $HOME/keep/f")
    assert kept["output"].split() == ["0", "kept", "more"], kept


_USERNS_MAP = textwrap.dedent(
    """
    import json, os, sys
    from rock_admin.runtimes import linux, zygote

    r, w = os.pipe()
    up_r, up_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a process in a new user namespace, as C is when B maps it
        linux.unshare(linux.CLONE_NEWUSER)
        os.close(w)
        os.write(up_w, b"u")
        os.read(r, 1)
        os._exit(0)
    os.close(r)
    os.read(up_r, 1)
    before = sorted(os.listdir("/proc/self/fd"))
    spec = {"userns": {"uid": 100000, "size": 65536}, "mask": sys.argv[1], "rootfs": "/"}
    try:
        zygote._close_layers(zygote._map_user_namespace(spec, str(pid)))
        raised = ""
    except OSError as exc:
        raised = str(exc)
    after = sorted(os.listdir("/proc/self/fd"))
    uid_map = open(f"/proc/{pid}/uid_map").read().split()
    os.close(w)
    os.waitpid(pid, 0)
    print(json.dumps({"raised": raised, "leaked": sorted(set(after) - set(before)), "uid_map": uid_map}))
    """
)


def _map_user_namespace_in_child(mask: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _USERNS_MAP, mask], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@functools.cache
def _kernel_cannot_id_map() -> str:
    """Why this kernel cannot give sandboxes a user namespace (`userns: auto` falls back), or ''."""
    return _map_user_namespace_in_child("/dev/shm")["raised"]  # the host's root and a tmpfs, as a mask is


def _needs_userns(isolation: str) -> None:
    if ", user)" not in isolation:
        why = _kernel_cannot_id_map()
        assert why, f"the kernel can id-map, yet the sandbox has no user namespace: {isolation}"
        pytest.skip(f"no user namespace for sandboxes on this kernel: {why}")


@needs_root
def test_user_namespace_map_that_cannot_id_map_a_layer_fails_cleanly() -> None:
    """B maps C's namespace, then a layer that cannot be id-mapped: an error naming it (B then starts C
    without a user namespace under `userns: auto`, or fails the start under `on`) and no fd left open."""
    seen = _map_user_namespace_in_child("/nonexistent")
    assert "open_tree /nonexistent" in seen["raised"], seen
    assert seen["leaked"] == [], seen
    assert seen["uid_map"] == ["0", "100000", "65536"], seen  # the map itself was written


# --- seccomp, the filter itself ---


def _run_bpf(program: list[seccomp.Instruction], nr: int, arch: int, arg0: int = 0) -> int:
    """Classic BPF, the subset the filter uses, over one struct seccomp_data: the action it returns."""
    data = {seccomp._OFF_NR: nr & 0xFFFFFFFF, seccomp._OFF_ARCH: arch, seccomp._OFF_ARG0: arg0 & 0xFFFFFFFF}
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == seccomp._RET:
            return k
        if code == seccomp._LD_W_ABS:
            acc = data[k]
            continue
        taken = {seccomp._JEQ: acc == k, seccomp._JGE: acc >= k, seccomp._JSET: bool(acc & k)}[code]
        pc += jt if taken else jf


EPERM = seccomp.RET_ERRNO | errno.EPERM


@pytest.mark.parametrize("machine", sorted(seccomp.ARCHES))
def test_filter_program_per_architecture(machine: str) -> None:
    arch = seccomp.ARCHES[machine]
    nrs = arch.syscalls
    program = seccomp.build_filter(machine)

    def verdict(name: str, arg0: int = 0, audit: int = arch.audit) -> int:
        return _run_bpf(program, nrs[name], audit, arg0)

    for name in seccomp.DENIED:
        if name in nrs:
            assert verdict(name) == EPERM, name
    for name in ("seccomp", "personality"):  # allowed, the latter with Docker's values only
        assert verdict(name) == seccomp.RET_ALLOW
    assert _run_bpf(program, 0, arch.audit) == seccomp.RET_ALLOW  # read (x86_64) / io_setup (aarch64)
    assert verdict("clone3") == seccomp.RET_ERRNO | errno.ENOSYS
    assert verdict("clone", arg0=0x01200011) == seccomp.RET_ALLOW  # fork(): CLONE_CHILD_SETTID|... |SIGCHLD
    assert verdict("clone", arg0=seccomp.CLONE_NEWUSER | 17) == EPERM
    assert verdict("clone", arg0=seccomp.CLONE_NEWNET) == EPERM
    assert verdict("personality", arg0=0x0400000) == EPERM  # READ_IMPLIES_EXEC
    assert verdict("personality", arg0=0xFFFFFFFF) == seccomp.RET_ALLOW
    other = seccomp.AUDIT_ARCH_AARCH64 if machine == "x86_64" else seccomp.AUDIT_ARCH_X86_64
    assert verdict("keyctl", audit=other) == seccomp.RET_KILL_PROCESS
    assert _run_bpf(program, 0, 0x40000003) == seccomp.RET_KILL_PROCESS  # i386 / arm32 compat
    if arch.has_x32:
        assert _run_bpf(program, seccomp.X32_SYSCALL_BIT | 39, arch.audit) == seccomp.RET_KILL_PROCESS
        assert _run_bpf(program, -1, arch.audit) == seccomp.RET_ALLOW


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(OSError, match="no syscall table for architecture 'riscv64'"):
        seccomp.build_filter("riscv64")


_FILTERED_CHILD = textwrap.dedent(
    """
    import ctypes, errno, json, os, subprocess, sys, threading
    from rock_admin.runtimes import linux, seccomp

    nrs = seccomp.ARCHES[os.uname().machine].syscalls
    libc = ctypes.CDLL(None, use_errno=True)

    def call(name, *args):
        ctypes.set_errno(0)
        result = libc.syscall(ctypes.c_long(nrs[name]), *args)
        return errno.errorcode.get(ctypes.get_errno(), "OK") if result < 0 else "OK"

    def add_key():
        return call("add_key", b"user", b"escape-probe", b"secret", ctypes.c_size_t(6), ctypes.c_int(-2))

    before = add_key()
    threading.Thread(target=lambda: None).start()  # a second thread existed: TSYNC covers all
    seccomp.install_sandbox_filter()
    status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
    shell = subprocess.run(
        ["bash", "-c", "echo sandbox | tr a-z A-Z; (sleep 0.01 &); wait"], capture_output=True, text=True
    )
    python = subprocess.run(
        [sys.executable, "-c", "import sqlite3; print(sqlite3.connect(':memory:').execute('select 40+2').fetchone()[0])"],
        capture_output=True, text=True,
    )
    pid = os.fork()
    if pid == 0:
        os._exit(0 if add_key() == "EPERM" else 1)
    print(json.dumps({
        "before": before,
        "add_key": add_key(),
        "keyctl": call("keyctl", ctypes.c_int(0), ctypes.c_int(-2), ctypes.c_int(0)),  # KEYCTL_GET_KEYRING_ID
        "request_key": call("request_key", b"user", b"escape-probe", None, ctypes.c_int(0)),
        "bpf": call("bpf", ctypes.c_int(0), None, ctypes.c_uint(0)),
        "unshare_user": call("unshare", ctypes.c_int(seccomp.CLONE_NEWUSER)),
        "mount": call("mount", b"none", b"/tmp", b"tmpfs", ctypes.c_ulong(0), None),
        "io_uring_setup": call("io_uring_setup", ctypes.c_uint(1), None),
        "perf_event_open": call("perf_event_open", None, 0, -1, -1, 0),
        "forked_child_add_key_eperm": os.waitpid(pid, 0)[1] == 0,
        "no_new_privs": status["NoNewPrivs"].strip(),
        "seccomp": status["Seccomp"].strip(),
        "workload": [shell.returncode, shell.stdout, python.returncode, python.stdout, shell.stderr + python.stderr],
    }))
    """
)


@pytest.mark.skipif(platform.machine() not in seccomp.ARCHES, reason="no syscall table for this architecture")
def test_installed_filter_denies_and_workloads_still_run() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _FILTERED_CHILD], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["before"] == "OK"  # the probe is real: unfiltered, a key is added to the shared keyring
    for name in ("add_key", "keyctl", "request_key", "bpf", "unshare_user", "mount", "io_uring_setup"):
        assert seen[name] == "EPERM", (name, seen)
    assert seen["perf_event_open"] == "EPERM"
    assert seen["forked_child_add_key_eperm"] is True
    assert seen["no_new_privs"] == "1" and seen["seccomp"] == "2"
    assert seen["workload"] == [0, "SANDBOX\n", 0, "42\n", ""]


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the x32 ABI exists on x86_64 only")
def test_x32_syscall_kills_the_process() -> None:
    script = (
        "import ctypes; from rock_admin.runtimes import seccomp; seccomp.install_sandbox_filter(); "
        "ctypes.CDLL(None).syscall(ctypes.c_long(seccomp.X32_SYSCALL_BIT | 39)); print('survived')"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == -signal.SIGSYS and "survived" not in result.stdout
