"""Start a real rocklet process for tests (yours and ours): `with running_rocklet(tmp_path) as r: ...`.

The process is stopped by its PID (SIGTERM, then SIGKILL) when the block ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningRocklet:
    pid: int
    token: str
    url: str | None = None
    uds: str | None = None
    log_path: Path | None = None

    def client(self, **kwargs: object) -> httpx.Client:
        """A sync httpx client with the API key set (TCP or Unix socket)."""
        headers = {"X-API-Key": self.token} if self.token else {}
        if self.uds:
            return httpx.Client(
                transport=httpx.HTTPTransport(uds=self.uds),
                base_url="http://rocklet",
                headers=headers,
                **kwargs,
            )  # type: ignore[arg-type]
        return httpx.Client(base_url=self.url or "", headers=headers, **kwargs)  # type: ignore[arg-type]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


@contextlib.contextmanager
def running_rocklet(
    workdir: Path,
    *,
    token: str = "",
    uds: bool = False,
    extra_args: list[str] | None = None,
    startup_timeout: float = 30.0,
    env: dict[str, str] | None = None,
) -> Iterator[RunningRocklet]:
    """Run `python -m rocklet` on a free TCP port (or a Unix socket in `workdir`) until the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "rocklet", "--state-dir", str(workdir / "state")]
    if token:
        args += ["--auth-token", token]
    if uds:
        sock = str(workdir / "rocklet.sock")
        args += ["--uds", sock]
        info = RunningRocklet(pid=0, token=token, uds=sock)
    else:
        port = free_port()
        args += ["--host", "127.0.0.1", "--port", str(port)]
        info = RunningRocklet(pid=0, token=token, url=f"http://127.0.0.1:{port}")
    args += extra_args or []
    info.log_path = workdir / "rocklet.log"
    with info.log_path.open("wb") as log:
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    info.pid = proc.pid
    try:
        deadline = time.monotonic() + startup_timeout
        with info.client(timeout=2.0) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"rocklet exited with {proc.returncode}:\n{info.log()}")
                try:
                    if client.get("/is_alive").status_code in (200, 401):
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"rocklet did not answer within {startup_timeout} s:\n{info.log()}")
                time.sleep(0.05)
        yield info
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def run(http: httpx.Client, session: str, command: str, **fields: object) -> httpx.Response:
    """POST a bash action to `/run_in_session` (raw HTTP, as an upstream client would)."""
    return http.post(
        "/run_in_session", json={"action_type": "bash", "command": command, "session": session, **fields}
    )


def error_of(response: httpx.Response) -> dict[str, object]:
    """The serialised exception of an HTTP 511 reply (asserting both upstream keys carry it; the class path of
    each is in its reader's dialect, see rocklet.errors)."""
    assert response.status_code == 511, (response.status_code, response.text)
    body = response.json()
    strip = ("class_path",)
    assert {k: v for k, v in body["rockletexception"].items() if k not in strip} == {
        k: v for k, v in body["swerexception"].items() if k not in strip
    }
    return body["rockletexception"]


class DroppingProxy:
    """A TCP proxy in front of `target` that, once `arm(n)` is called, cuts the connection of the next `n`
    responses after the server has answered (the request ran) and before the client sees a byte: a
    connection lost mid-request, as a flaky network or a restarting proxy makes one."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._armed = 0
        self.dropped = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def arm(self, n: int = 1) -> None:
        with self._lock:
            self._armed = n

    def _take_drop(self) -> bool:
        with self._lock:
            if self._armed > 0:
                self._armed -= 1
                self.dropped += 1
                return True
            return False

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, responses: bool) -> None:
        try:
            while chunk := src.recv(1 << 16):
                if responses and self._take_drop():
                    break
                dst.sendall(chunk)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self._server.close()
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.close()


@contextlib.contextmanager
def dropping_proxy(url: str) -> Iterator[DroppingProxy]:
    """A `DroppingProxy` in front of the HTTP server at `url` (`http://host:port`) while the block runs."""
    host, _, port = url.removeprefix("http://").partition(":")
    proxy = DroppingProxy((host, int(port)))
    try:
        yield proxy
    finally:
        proxy.close()
