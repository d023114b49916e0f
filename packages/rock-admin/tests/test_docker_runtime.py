"""The `docker` runtime against a real engine: Podman's Docker-compatible service, started here, with a base
image built once per machine (debootstrap → import, cached). Real admin processes over HTTP; every container
this module makes is removed at the end, by its admin's label."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from rock_admin.engines import podman
from rock_admin.runtimes import seccomp
from rock_admin.runtimes.docker import LABEL_ADMIN, LABEL_SANDBOX, admin_id
from rock_admin.testing import (
    KEYRING_PROBE,
    Admin,
    failed,
    in_sandbox_python,
    ok,
    remove_containers,
    run,
    running_admin,
    start_sandbox,
)

pytestmark = pytest.mark.docker

try:
    import docker
except ImportError:  # pragma: no cover - CI installs the test extra, which has docker
    if os.environ.get("CI"):
        raise
    pytest.skip("the docker SDK is not installed (pip install 'rock-admin[docker]')", allow_module_level=True)

_missing = podman.available() or ("" if os.geteuid() == 0 else "not root (rootful podman with runc)")
if _missing and not os.environ.get("CI"):
    pytest.skip(f"podman engine unavailable: {_missing}", allow_module_level=True)


@pytest.fixture(scope="module")
def engine() -> Iterator[str]:
    podman.ensure_base_image()
    with podman.podman_service() as url:
        yield url


@pytest.fixture(scope="module")
def engine_client(engine: str) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=engine, version="1.41", timeout=120)
    yield client
    client.close()


@contextlib.contextmanager
def _admin(engine: str, client: docker.DockerClient, state: Path, **settings: str) -> Iterator[Admin]:
    try:
        with running_admin(state, runtime="docker", docker_host=engine, pids_max="512", **settings) as admin:
            yield admin
    finally:
        remove_containers(client, state)


@pytest.fixture
def docker_admin(engine: str, engine_client: docker.DockerClient, tmp_path: Path) -> Iterator[Admin]:
    """The default: the rocklet forked into each container by the admin's zygote."""
    with _admin(engine, engine_client, tmp_path / "admin") as admin:
        yield admin


@pytest.fixture
def exec_admin(engine: str, engine_client: docker.DockerClient, tmp_path: Path) -> Iterator[Admin]:
    """`docker_rocklet: exec`: the rocklet is the container's command (a fresh interpreter)."""
    with _admin(engine, engine_client, tmp_path / "exec-admin", docker_rocklet="exec") as admin:
        yield admin


def _container(client: docker.DockerClient, sid: str) -> docker.models.containers.Container:
    (found,) = client.containers.list(all=True, filters={"label": f"{LABEL_SANDBOX}={sid}"})
    return found


def _wait_state(http: httpx.Client, sid: str, state: str, within: float = 30) -> dict:
    deadline = time.monotonic() + within
    while True:
        # A failed sandbox's status comes in a `Failed` envelope (with the status as its result).
        status = http.get("/get_status", params={"sandbox_id": sid}).json()["result"]
        if status["state"] == state or time.monotonic() > deadline:
            assert status["state"] == state, status
            return status
        time.sleep(0.05)


def test_fifty_containers_run_commands(docker_admin: Admin, engine_client: docker.DockerClient) -> None:
    """50 sandboxes created 8 at a time all reach `running`; each runs a command in its own container."""
    with docker_admin.client() as http:

        def create_and_echo(i: int) -> tuple[str, str]:
            sid = start_sandbox(http, memory="256m", cpus=0.5)
            ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
            return sid, run(http, sid, f"echo n{i} $(hostname)")["output"].strip()

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(create_and_echo, range(50)))
        assert [out for _, out in results] == [f"n{i} {sid}" for i, (sid, _) in enumerate(results)]
        listed = ok(http.get("/sandboxes", params={"state": "running", "page_size": 100}))
        assert {sid for sid, _ in results} <= {item["sandbox_id"] for item in listed["items"]}  # type: ignore[index]
        assert len({_container(engine_client, sid).id for sid, _ in results}) == 50
        for sid, _ in results:
            ok(http.post("/delete", json={"sandbox_id": sid}))
        assert (
            engine_client.containers.list(
                all=True, filters={"label": f"{LABEL_ADMIN}={admin_id(str(docker_admin.state_dir))}"}
            )
            == []
        )


def test_limits_no_network_and_restart_keeps_files(
    docker_admin: Admin, engine_client: docker.DockerClient
) -> None:
    with docker_admin.client() as http:
        sid = start_sandbox(http, memory="200m", cpus=0.5)
        host = _container(engine_client, sid).attrs["HostConfig"]
        assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (200 * 2**20, 5 * 10**8, 512)
        assert host["NetworkMode"] == "none"
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        # Only loopback inside: the rocklet is reached through its socket, nothing else gets out.
        assert run(http, sid, "ls /sys/class/net")["output"].split() == ["lo"]
        assert run(http, sid, "echo kept > /root/f && cat /root/f")["output"].strip() == "kept"
        ok(http.post("/stop", json={"sandbox_id": sid}))
        assert not _container(engine_client, sid).attrs["State"]["Running"]
        ok(http.post("/restart", json={"sandbox_id": sid}))
        _wait_state(http, sid, "running")
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        assert run(http, sid, "cat /root/f")["output"].strip() == "kept"


def test_memory_hog_fails_the_sandbox_with_the_reason(exec_admin: Admin) -> None:
    """A hog that takes the rocklet down with it (the rocklet made the OOM killer's first choice) fails the
    sandbox, and the reason says out of memory."""
    with exec_admin.client() as http:
        sid = start_sandbox(http, memory="128m", cpus=1)
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        hog = "echo 1000 > /proc/$PPID/oom_score_adj; python3 -c 'x = bytearray(512 * 1024 * 1024)'"
        http.post("/run_in_session", json={"sandbox_id": sid, "session": "s", "command": hog})
        status = _wait_state(http, sid, "stopped")  # failed: stopped with a failure_reason
        assert "out of memory" in status["failure_reason"], status


def test_a_forked_rocklet_outlives_a_memory_hog(docker_admin: Admin) -> None:
    """The forked rocklet's oom_score_adj is not the sandbox's to raise (its /proc files are the host's root's):
    the OOM killer takes the hog, the command fails, and the sandbox goes on."""
    with docker_admin.client() as http:
        sid = start_sandbox(http, memory="128m", cpus=1)
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        hog = "echo 1000 > /proc/$PPID/oom_score_adj; python3 -c 'x = bytearray(512 * 1024 * 1024)'"
        out = failed(http.post("/run_in_session", json={"sandbox_id": sid, "session": "s", "command": hog}))
        assert out["result"]["exit_code"] == 137, out  # killed
        assert "oom_score_adj: Permission denied" in out["result"]["extra_info"]["output"], out
        assert run(http, sid, "echo alive")["output"].strip() == "alive"


@pytest.mark.parametrize("mode", ["fork", "exec"])
def test_killed_rocklet_fails_the_sandbox(
    mode: str, docker_admin: Admin, exec_admin: Admin, engine_client: docker.DockerClient
) -> None:
    admin = docker_admin if mode == "fork" else exec_admin
    with admin.client() as http:
        sid = start_sandbox(http)
        assert _container(engine_client, sid).labels["rock.rocklet"] == mode
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        run(http, sid, "(sleep 0.2; kill -9 $PPID) > /dev/null 2>&1 &")
        status = _wait_state(http, sid, "stopped", within=10)
        assert "rocklet killed by SIGKILL" in status["failure_reason"], status
        body = failed(http.post("/execute", json={"sandbox_id": sid, "command": "true"}))
        assert "killed by SIGKILL" in body["message"], body


def test_missing_image_and_exit_at_start_are_reported_at_once(docker_admin: Admin, exec_admin: Admin) -> None:
    with docker_admin.client() as http:
        never = failed(http.post("/start", json={"image": "localhost/no-such-image:1", "pull": "never"}))
        assert "no-such-image" in never["message"] and "pull is 'never'" in never["message"], never
        # `missing` asks the engine to pull; no registry answers here, and the engine's error comes back.
        missing = failed(http.post("/start", json={"image": "localhost/no-such-image:1", "pull": "missing"}))
        assert "pull failed" in missing["message"], missing
        bad = failed(http.post("/start", json={"pull": "sometimes"}))
        assert "pull: expected one of never, missing, always" in bad["message"], bad
    with exec_admin.client() as http:
        # A rocklet that cannot start: the container exits at once, with the interpreter's complaint.
        crash = failed(http.post("/start", json={"env": {"PYTHONHOME": "/nonexistent"}, "memory": "256m"}))
        assert "exited with code 1" in crash["message"] and "Fatal Python error" in crash["message"], crash


def test_restart_adopts_containers_and_removes_orphans(
    engine: str, engine_client: docker.DockerClient, tmp_path: Path
) -> None:
    state = tmp_path / "admin"
    try:
        with running_admin(state, runtime="docker", docker_host=engine) as admin:
            with admin.client() as http:
                sid = start_sandbox(http, memory="256m")
                ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
                assert run(http, sid, "export KEEP=7; echo set")["output"].strip() == "set"
            admin.kill9()
            # A container of this admin that no record names (as if it died between create and save).
            orphan = engine_client.containers.run(
                podman.BASE_IMAGE,
                ["sleep", "300"],
                labels={LABEL_ADMIN: admin_id(str(state)), LABEL_SANDBOX: "ghost"},
                network_mode="none",
                init=True,
                detach=True,
            )
            admin.start()
            with admin.client() as http:
                assert run(http, sid, "echo $KEEP")["output"].strip() == "7"
            with pytest.raises(docker.errors.NotFound):
                engine_client.containers.get(orphan.id)
    finally:
        remove_containers(engine_client, state)


def test_bridge_network_reaches_the_rocklet_on_a_local_port(
    engine: str, engine_client: docker.DockerClient, tmp_path: Path
) -> None:
    state = tmp_path / "admin"
    try:
        settings = {"runtime": "docker", "docker_host": engine, "docker_network": "bridge"}
        with running_admin(state, **settings) as admin, admin.client() as http:
            sid = start_sandbox(http, memory="256m")
            ports = _container(engine_client, sid).attrs["NetworkSettings"]["Ports"]["8000/tcp"]
            assert ports[0]["HostIp"] == "127.0.0.1"
            ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
            assert run(http, sid, "echo over tcp")["output"].strip() == "over tcp"
    finally:
        remove_containers(engine_client, state)


def test_unreachable_engine_stops_the_admin_with_a_clear_error(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ROCK_ADMIN_RUNTIME": "docker",
        "ROCK_ADMIN_DOCKER_HOST": f"unix://{tmp_path}/none.sock",
    }
    r = subprocess.run(
        [sys.executable, "-m", "rock_admin", "serve", "--state-dir", str(tmp_path / "admin"), "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode != 0 and "cannot reach the container engine at unix://" in r.stderr, r.stderr[-2000:]


@pytest.mark.parametrize("network", ["none", "bridge"])  # the rocklet's socket, or its published TCP port
def test_port_forward_to_a_server_in_the_container(
    engine: str, engine_client: docker.DockerClient, tmp_path: Path, network: str
) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    state = tmp_path / "admin"
    try:
        settings = {"runtime": "docker", "docker_host": engine, "docker_network": network}
        with running_admin(state, **settings) as admin, admin.client() as http:
            sid = start_sandbox(http, memory="256m")
            ok(
                http.post(
                    "/write_file", json={"sandbox_id": sid, "path": "/tmp/www/hi.txt", "content": "hello"}
                )
            )
            server = "python3 -m http.server 7002 --bind 127.0.0.1 --directory /tmp/www"
            ok(http.post("/processes", json={"sandbox_id": sid, "command": server}))
            probe = "for i in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/7002) 2>/dev/null && exit 0; sleep 0.1; done; exit 1"
            listening = ok(
                http.post(
                    "/execute", json={"sandbox_id": sid, "command": ["bash", "-c", probe], "timeout": 60}
                )
            )
            assert listening["exit_code"] == 0, listening  # type: ignore[index]
            url = admin.url.replace("http://", "ws://") + f"/apis/envs/sandbox/v1/sandboxes/{sid}/portforward"
            reply = b""
            with connect(url + "?port=7002", open_timeout=30) as ws:
                ws.send(b"GET /hi.txt HTTP/1.0\r\n\r\n")
                with pytest.raises(ConnectionClosed):
                    while True:
                        reply += ws.recv(timeout=30)  # type: ignore[operator]
            assert reply.startswith(b"HTTP/1.0 200") and reply.endswith(b"hello") and ws.close_code == 1000
            with connect(url + "?port=7999", open_timeout=30) as ws, pytest.raises(ConnectionClosed):
                ws.recv(timeout=30)
            assert ws.close_code == 1011 and "refused" in (ws.close_reason or "")
    finally:
        remove_containers(engine_client, state)


def test_container_privileges_writable_root_and_disk(
    docker_admin: Admin, engine_client: docker.DockerClient
) -> None:
    """The process runtime's capability set and no_new_privs; a writable root as upstream's; `disk` enforced on
    the root layer where the engine can, else on /tmp (and always on the run dir), ENOSPC at the limit."""
    from rock_admin.runtimes import linux

    with docker_admin.client() as http:
        sid = start_sandbox(http, memory="256m", disk="64m")
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        status = run(http, sid, "grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status")["output"].split()
        mask = f"{sum(1 << cap for cap in linux.KEEP_CAPS):016x}"
        assert status == ["CapEff:", mask, "CapBnd:", mask, "NoNewPrivs:", "1"], status
        host = _container(engine_client, sid).attrs["HostConfig"]
        assert not host.get("ReadonlyRootfs")
        steps = run(
            http, sid, "mkdir /root/x && useradd -m rockuser && su rockuser -c 'id -un' && touch /etc/x"
        )
        assert steps["exit_code"] == 0 and steps["output"].strip() == "rockuser", steps
        # The run dir (shared with the host) takes no setuid files or devices, and runs nothing.
        mounts = run(http, sid, "grep ' /run/rocklet ' /proc/self/mountinfo")["output"].split()
        assert {"nosuid", "nodev", "noexec"} <= set(mounts[5].split(",")), mounts
        assert (docker_admin.state_dir / "docker").stat().st_mode & 0o077 == 0
        full = run(http, sid, "dd if=/dev/zero of=/tmp/big bs=1M count=80 2>&1")["output"]
        assert "No space left on device" in full, full
        message = ok(http.get("/get_status", params={"sandbox_id": sid}))["limits_message"]  # type: ignore[index]
        if (host.get("StorageOpt") or {}).get("size"):
            rootful = run(http, sid, "rm /tmp/big; dd if=/dev/zero of=/root/big bs=1M count=80 2>&1")[
                "output"
            ]
            assert "No space left on device" in rootful, rootful
        else:  # Podman's overlay on ext4 here: the engine says why it cannot, and the status carries it
            assert "xfs" in message and "/tmp and /run/rocklet are tmpfs" in message, message
            assert run(http, sid, "rm /tmp/big && touch /tmp/small")["exit_code"] == 0
        ok(http.post("/delete", json={"sandbox_id": sid}))
        with open("/proc/self/mountinfo") as table:
            assert not [line for line in table if sid in line]


@pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need the admin to run as root")
def test_process_runtime_on_an_imported_image_root(engine: str, tmp_path: Path) -> None:
    """The process runtime on a rootfs that is not the host's (the base image's, mounted by Podman): the image's
    files below, the rocklet's interpreter bound in, a writable root, nothing of the host's."""
    root = podman.podman_dir()
    rootfs = podman.podman(root, "image", "mount", podman.BASE_IMAGE).strip()
    try:
        state = tmp_path / "admin"
        cli = [
            sys.executable,
            "-m",
            "rock_admin",
            "image",
            "import",
            "deb:1",
            rootfs,
            "--state-dir",
            str(state),
        ]
        subprocess.run(cli, check=True, capture_output=True)
        with running_admin(state) as admin, admin.client() as http:
            sid = start_sandbox(http, image="deb:1", disk="64m")
            ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
            image_python = run(http, sid, "cat /etc/debian_version && /usr/bin/python3 --version")
            assert image_python["exit_code"] == 0 and "Python 3.11" in image_python["output"], image_python
            assert run(http, sid, "mkdir /root/x && useradd -m rockuser && echo ok")["output"].strip() == "ok"
            assert run(http, sid, f"test -e {Path(__file__)}")["exit_code"] != 0
            # The image's own dirs keep their modes (the mask adds only what is missing): anyone may use /tmp.
            modes = run(http, sid, "stat -c '%n %a' /tmp /root /usr /run/rocklet /home/user")[
                "output"
            ].split()
            assert modes[:6] == ["/tmp", "1777", "/root", "700", "/usr", "755"], modes
            assert (
                run(http, sid, "su nobody -s /bin/sh -c 'echo x > /tmp/n && cat /tmp/n'")["output"].strip()
                == "x"
            )
            full = run(http, sid, "dd if=/dev/zero of=/root/big bs=1M count=80 2>&1")["output"]
            assert "No space left on device" in full, full
            ok(http.post("/delete", json={"sandbox_id": sid}))
        assert not (Path(rootfs) / "root" / "x").exists()
    finally:
        podman.podman(root, "image", "unmount", podman.BASE_IMAGE)


def test_an_agent_in_a_container_is_answered_through_the_model_service(docker_admin: Admin) -> None:
    """The shipped Python agent runs in the container (the rocklet's interpreter, mounted from the host) and
    calls the model service on the container's 127.0.0.1; the test answers its turns through the admin."""
    with docker_admin.client() as http:
        sid = start_sandbox(http, memory="512m")
        status = ok(http.post("/model_service/start", json={"sandbox_id": sid, "request_timeout": 60}))
        ok(http.post("/write_file", json={"sandbox_id": sid, "path": "/tmp/task.txt", "content": "say hi"}))
        agent = f"{status['python']} -m rock.agents.bash_agent --task-file /tmp/task.txt"  # type: ignore[index]
        env = {"OPENAI_BASE_URL": status["base_url"], "OPENAI_API_KEY": "k"}  # type: ignore[index]
        proc = ok(http.post("/processes", json={"sandbox_id": sid, "command": agent, "env": env}))
        ok(http.post("/model_service/watch", json={"sandbox_id": sid, "process_id": proc["process_id"]}))  # type: ignore[index]
        replies = ["```bash\necho hi > /tmp/said.txt\n```", "DONE"]
        turn = ok(http.post("/model_service/anti_call", json={"sandbox_id": sid, "timeout": 60}, timeout=90))
        for n, text in enumerate(replies, start=1):
            assert turn["index"] == n and not turn["session_end"], turn  # type: ignore[index]
            answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
            body = {"sandbox_id": sid, "index": n, "response_payload": answer, "timeout": 60}
            turn = ok(http.post("/model_service/anti_call", json=body, timeout=90))
        assert turn["session_end"] and turn["exit_code"] == 0, turn  # type: ignore[index]
        said = ok(http.post("/read_file", json={"sandbox_id": sid, "path": "/tmp/said.txt"}))
        assert said["content"] == "hi\n"  # type: ignore[index]


# --- issue 11's escape probe, on the docker runtime ---


@pytest.mark.skipif(platform.machine() not in seccomp.ARCHES, reason="no syscall table for this architecture")
def test_escape_probe_between_two_containers_and_the_host(
    docker_admin: Admin, engine_client: docker.DockerClient
) -> None:
    """The attacks of the process runtime's probe, from two containers side by side: keyring, each other's
    files and processes, the host's files, the admin's state, the cgroup tree, setuid files for the host."""
    with docker_admin.client() as http:
        a, b = start_sandbox(http, memory="256m"), start_sandbox(http, memory="256m")
        for sid in (a, b):
            ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        # Keys are not namespaced: the engine's syscall filter must refuse them (Docker's default profile).
        nrs = seccomp.ARCHES[platform.machine()].syscalls
        probe = KEYRING_PROBE.format(add_key=nrs["add_key"], request_key=nrs["request_key"])
        desc = f"rock-escape-{a[:8]}"
        refused = ("EPERM", "ENOSYS")  # Docker's profile answers EPERM, Podman's ENOSYS
        assert in_sandbox_python(http, a, probe, "add", desc)["add_key"] in refused
        assert in_sandbox_python(http, b, probe, "get", desc)["request_key"] in refused
        assert desc not in Path("/proc/keys").read_text()
        # Each other's files and processes.
        assert run(http, a, "echo SECRET-A > /root/secret && sleep 300 &")["exit_code"] == 0
        assert run(http, b, "cat /root/secret 2>&1")["exit_code"] != 0
        assert "sleep 300" not in run(http, b, "ps -eo args")["output"]
        # The host's files: its shadow file, the project's tree beyond the package dirs, the admin's store.
        with contextlib.suppress(FileNotFoundError):
            shadow = Path("/etc/shadow").read_text()
            assert run(http, a, "cat /etc/shadow")["output"] != shadow
        repo = Path(__file__).resolve().parents[3]
        for host_path in (repo / "README.md", repo / ".git", docker_admin.state_dir):
            assert run(http, a, f"test -e {host_path}")["exit_code"] != 0, host_path
        # The cgroup tree and mounts do not name the other sandbox.
        seen = run(http, a, "cat /proc/self/cgroup /proc/self/mountinfo; ls -R /sys/fs/cgroup 2>/dev/null")
        assert b not in seen["output"]
        # A setuid file planted where the host can reach it (the run dir) is inert: nosuid, and the admin's alone.
        run(http, a, "cp /bin/sh /run/rocklet/sh && chmod 4755 /run/rocklet/sh")
        planted = docker_admin.state_dir / "docker" / a / "run" / "sh"
        if planted.exists():
            assert _nosuid(planted.parent)
        assert (
            docker_admin.state_dir / "docker"
        ).stat().st_mode & 0o077 == 0  # no other host user reaches it
        for sid in (a, b):
            ok(http.post("/delete", json={"sandbox_id": sid}))


def test_a_forked_rocklet_is_not_readable_from_its_container(docker_admin: Admin) -> None:
    """The forked rocklet holds the zygote's memory (what earlier requests passed through it): its memory
    and environ are not readable from inside, and its token is in no process's environ there."""
    with docker_admin.client() as http:
        sid = start_sandbox(http)
        ok(http.post("/create_session", json={"sandbox_id": sid, "session": "s"}))
        probe = run(http, sid, "head -c 16 /proc/$PPID/mem; cat /proc/$PPID/environ; echo")
        assert "Permission denied" in probe["output"] or "Input/output error" in probe["output"], probe
        environs = run(
            http, sid, "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c ROCKLET_AUTH"
        )
        assert environs["output"].strip() == "0", environs
        ok(http.post("/delete", json={"sandbox_id": sid}))


def _nosuid(path: Path) -> bool:
    """Whether the mount holding `path` ignores setuid bits."""
    return bool(os.statvfs(path).f_flag & os.ST_NOSUID)


def _uid_map(client: docker.DockerClient, sid: str) -> list[str]:
    pid = _container(client, sid).attrs["State"]["Pid"]
    return Path(f"/proc/{pid}/uid_map").read_text().split()


def test_container_root_is_a_host_uid_range_of_its_own(
    docker_admin: Admin, engine_client: docker.DockerClient
) -> None:
    """Root in a container is not host root: each container gets its own unprivileged host uid range (the
    run dir it writes into is owned by it on the host), kept across a restart, and the status says which."""
    with docker_admin.client() as http:
        a, b = start_sandbox(http), start_sandbox(http)
        maps = {sid: _uid_map(engine_client, sid) for sid in (a, b)}
        for sid, (inside, outside, size) in maps.items():
            assert inside == "0" and int(outside) >= 100_000 and size == "65536", maps
            status = ok(http.get("/get_status", params={"sandbox_id": sid}))
            assert f"root is host uid {outside}" in status["isolation"], status  # type: ignore[index]
            assert "root is host root" not in status["isolation"], status  # type: ignore[index]
        assert maps[a][1] != maps[b][1], maps
        ok(http.post("/create_session", json={"sandbox_id": a, "session": "s"}))
        assert run(http, a, "id -u; touch /run/rocklet/mine")["output"].split()[0] == "0"
        run_dir = docker_admin.state_dir / "docker" / a / "run"
        assert (run_dir / "mine").stat().st_uid == int(maps[a][1])
        ok(http.post("/stop", json={"sandbox_id": a}))
        ok(http.post("/restart", json={"sandbox_id": a}))
        _wait_state(http, a, "running")
        assert _uid_map(engine_client, a) == maps[a]
        ok(http.post("/create_session", json={"sandbox_id": a, "session": "s"}))
        assert run(http, a, "ls /run/rocklet/mine")["exit_code"] == 0
        for sid in (a, b):
            ok(http.post("/delete", json={"sandbox_id": sid}))


def test_userns_off_says_root_is_host_root(
    engine: str, engine_client: docker.DockerClient, tmp_path: Path
) -> None:
    """`userns: off` leaves the engine's mapping (none on rootful Podman): the status says root is host root."""
    state = tmp_path / "admin"
    try:
        with (
            running_admin(state, runtime="docker", docker_host=engine, userns="off") as admin,
            admin.client() as http,
        ):
            sid = start_sandbox(http)
            assert _uid_map(engine_client, sid)[:2] == ["0", "0"]
            status = ok(http.get("/get_status", params={"sandbox_id": sid}))
            assert "root is host root" in status["isolation"], status  # type: ignore[index]
            assert "userns-remap" in status["isolation"], status  # type: ignore[index]
    finally:
        remove_containers(engine_client, state)
