"""Start a real admin process for tests (yours and ours): `with running_admin(tmp_path) as admin: ...`.

Everything it started is stopped by PID when the block ends: the admin (SIGTERM; it stops its sandboxes and
the zygote with `stop_on_exit`), then whatever a `kill -9` left behind (sandbox inits, the zygote, cgroups).
A read node (`role="read"`) owns no sandboxes: stopping it leaves them alone. `running_redis(tmp_path)` starts
a private `redis-server` (a free port, data in the tmp dir) for `store="redis"`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from rock.actions import SANDBOX_API_PREFIX
from rock_admin.runtimes.host import pid_start
from rocklet.testing import free_port

PREFIX = SANDBOX_API_PREFIX
T = TypeVar("T")
#: What the port-forwarding tests serve inside a sandbox: a TCP echo server (`ECHO`, run as `python3 FILE PORT`)
#: and `python3 -m http.server`.
ECHO_PORT = 7001
HTTP_PORT = 7002
ECHO = """
import socket, sys, threading

def serve(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)

server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    threading.Thread(target=serve, args=(server.accept()[0],), daemon=True).start()
"""


@dataclass
class Admin:
    state_dir: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kw: object) -> httpx.Client:
        return httpx.Client(base_url=self.url + PREFIX, timeout=60, **kw)  # type: ignore[arg-type]

    def raw(self, **kw: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kw)  # type: ignore[arg-type]

    @property
    def role(self) -> str:
        return self.env.get("ROCK_ADMIN_ROLE", "all")

    def start(self) -> None:
        # Nodes of one cluster may share a state dir (SQLite): each its own log.
        self.log_path = self.state_dir / ("admin.log" if self.role != "read" else f"read-{self.port}.log")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rock_admin",
                    "serve",
                    "--port",
                    str(self.port),
                    "--state-dir",
                    str(self.state_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"admin exited: {self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/metrics", timeout=1, headers=self._auth()).status_code in (
                    200,
                    401,
                ):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"admin did not answer: {self.log_path.read_text()[-3000:]}")
            time.sleep(0.05)

    def _auth(self) -> dict[str, str]:
        keys = self.env.get("ROCK_ADMIN_API_KEYS", "")
        return {"X-API-Key": keys.split(",")[0]} if keys else {}

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.cleanup()

    def cleanup(self) -> None:
        """Whatever is left (after a kill -9): sandbox inits, the zygote, cgroups — by PID, from the store."""
        if self.role == "read":
            return  # the sandboxes are the write node's
        for record in self._records():
            handle = record.get("handle") or {}
            pid = handle.get("pid")
            if pid and pid_start(pid) == handle.get("pid_start"):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            for d in handle.get("cgroups", []):
                for _ in range(20):
                    with contextlib.suppress(OSError):
                        os.rmdir(d)
                    if not os.path.isdir(d):
                        break
                    time.sleep(0.05)
        pid_file = self.state_dir / "zygote.pid"
        if pid_file.exists():
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
        _unmount_under(self.state_dir)

    def sandbox_pid(self, sandbox_id: str) -> int:
        """The host pid of a sandbox's init (what a crashed host's `kill -9` hits), from the admin's store:
        the API never tells it, since it is the host's business."""
        for record in self._records():
            if record.get("sandbox_id") == sandbox_id and (record.get("handle") or {}).get("pid"):
                return int(record["handle"]["pid"])
        raise LookupError(f"sandbox {sandbox_id} has no running process in the admin's store")

    def _records(self) -> list[dict[str, Any]]:
        if self.env.get("ROCK_ADMIN_STORE") == "redis":
            from rock_admin.store.redis import RedisStore

            store = RedisStore(
                self.env["ROCK_ADMIN_REDIS_URL"], self.env.get("ROCK_ADMIN_REDIS_PREFIX", "rock")
            )
            try:
                return store.list()
            except Exception:  # Redis is gone too: nothing to read the sandboxes from
                return []
            finally:
                store.close()
        db = self.state_dir / "rock-admin.db"
        if not db.exists():
            return []
        with contextlib.closing(sqlite3.connect(db)) as conn:
            return [json.loads(r) for (r,) in conn.execute("SELECT record FROM sandboxes")]


def _unmount_under(path: Path) -> None:
    """Detach the tmpfs mounts the process runtime left under `path` (sandboxes not deleted, the masks)."""
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mountinfo") as table:
        points = [line.split()[4] for line in table if line.split()[4].startswith(prefix)]
    from rock_admin.runtimes import linux

    for point in sorted(points, key=len, reverse=True):
        with contextlib.suppress(OSError):
            linux.umount2(point, linux.MNT_DETACH)


@contextlib.contextmanager
def running_admin(state_dir: Path, **settings: str) -> Iterator[Admin]:
    env = {
        "ROCK_ADMIN_STOP_ON_EXIT": "true",
        "ROCK_ADMIN_AUTO_STOP_INTERVAL": "0.2",
        "ROCK_ADMIN_LOG_LEVEL": "info",
        **{f"ROCK_ADMIN_{k.upper()}": v for k, v in settings.items()},
    }
    admin = Admin(state_dir=state_dir, port=free_port(), env=env)
    try:
        admin.start()
        yield admin
    finally:
        admin.stop()


def remove_containers(client: Any, state_dir: Path) -> None:
    """Remove the containers of the admin on `state_dir` (by its label) from the engine `client` talks to."""
    import docker

    from rock_admin.runtimes.docker import LABEL_ADMIN, admin_id

    label = {"label": f"{LABEL_ADMIN}={admin_id(str(state_dir))}"}
    for container in client.containers.list(all=True, filters=label):
        # Podman 4.3 may answer EBUSY (its shm dir) for a user-namespaced container it did remove.
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
    left = client.containers.list(all=True, filters=label)
    assert not left, f"containers left on the engine: {[c.name for c in left]}"


@dataclass
class Redis:
    """A private `redis-server` (append-only file in `dir`, so a restart keeps the data), stopped by PID."""

    dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"]
        with (self.dir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [*args, "--dir", str(self.dir)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"redis-server did not start: {(self.dir / 'redis.log').read_text()[-2000:]}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def running_redis(dir: Path) -> Iterator[Redis]:
    redis = Redis(dir=dir, port=free_port())
    try:
        redis.start()
        yield redis
    finally:
        redis.stop()


@dataclass(frozen=True)
class SandboxRef:
    """One sandbox of a test's admin, to drive through the SDK."""

    url: str
    sandbox_id: str
    api_key: str | None = None

    def call(self, fn: Callable[[Any], Awaitable[T]], api_key: str | None = None) -> T:
        """`fn(sandbox)` with a fresh SDK client (this key, or `api_key`) in a fresh event loop."""
        from rock.sdk.sandbox.client import Sandbox
        from rock.sdk.sandbox.config import SandboxConfig

        async def main() -> T:
            key = api_key if api_key is not None else self.api_key
            sb = Sandbox(SandboxConfig(base_url=self.url, api_key=key, sandbox_id=self.sandbox_id))
            try:
                return await fn(sb)
            finally:
                await sb.http.aclose()  # not close(): that would stop the shared sandbox

        return asyncio.run(main())


def ok(response: httpx.Response) -> object:
    """The `result` of a Success envelope (asserting the envelope's shape)."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"status", "message", "error", "result"}, body
    assert body["status"] == "Success", body
    return body["result"]


def failed(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"status", "message", "error", "result"}, body
    assert body["status"] == "Failed", body
    return body


def start_sandbox(http: httpx.Client, **fields: object) -> str:
    body = {"image": "python:3.11", "memory": "512m", "cpus": 1, **fields}
    result = ok(http.post("/start", json=body))
    assert isinstance(result, dict)
    return result["sandbox_id"]


def run(http: httpx.Client, sid: str, command: str, session: str = "s", **fields: object) -> dict:
    return ok(  # type: ignore[return-value]
        http.post(
            "/run_in_session",
            json={"sandbox_id": sid, "session": session, "command": command, "check": "silent", **fields},
        )
    )


def in_sandbox_python(http: httpx.Client, sid: str, script: str, *args: str) -> dict:
    """Run `script` with the sandbox's python3; it prints one JSON object."""
    ok(http.post("/write_file", json={"sandbox_id": sid, "path": "/tmp/probe.py", "content": script}))
    result = run(http, sid, "python3 /tmp/probe.py " + " ".join(args), timeout=60)
    assert result["exit_code"] == 0, result
    return json.loads(result["output"].strip().splitlines()[-1])


KEYRING_PROBE = textwrap.dedent(
    """
    import ctypes, errno, json, sys
    ADD_KEY, REQUEST_KEY = {add_key}, {request_key}
    libc = ctypes.CDLL(None, use_errno=True)

    def call(nr, *args):
        ctypes.set_errno(0)
        result = libc.syscall(ctypes.c_long(nr), *args)
        return errno.errorcode.get(ctypes.get_errno(), "?") if result < 0 else "OK"

    desc = sys.argv[2].encode()
    if sys.argv[1] == "add":  # into the user keyring (KEY_SPEC_USER_KEYRING): shared by every root process
        print(json.dumps({{"add_key": call(ADD_KEY, b"user", desc, b"SECRET", ctypes.c_size_t(6), ctypes.c_int(-4))}}))
    else:
        print(json.dumps({{"request_key": call(REQUEST_KEY, b"user", desc, None, ctypes.c_int(0))}}))
    """
)
