"""`sandbox.network` / `sandbox.fs` / `sandbox.process` against a real `rock-admin serve` (API keys on) and a
real sandbox with an echo and an HTTP server running inside it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import httpx
import pytest

testing = pytest.importorskip("rock_admin.testing", reason="the SDK tests need rock-admin (test extra)")

from rock.sdk.sandbox.client import Sandbox  # noqa: E402
from rock.sdk.sandbox.config import SandboxConfig  # noqa: E402
from rock.sdk.sandbox.portforward import PortForwardError  # noqa: E402

T = TypeVar("T")
KEY = "sdk-helpers-key"
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
class Env:
    url: str
    sandbox_id: str


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with (
        testing.running_admin(tmp_path_factory.mktemp("sdk-helpers"), api_keys=KEY) as admin,
        admin.client(headers={"X-API-Key": KEY}) as http,
    ):
        sid = testing.start_sandbox(http)
        for path, content in (("/tmp/echo.py", ECHO), ("/tmp/www/hi.txt", "hello")):
            testing.ok(http.post("/write_file", json={"sandbox_id": sid, "path": path, "content": content}))
        for command in (
            f"python3 /tmp/echo.py {ECHO_PORT}",
            f"python3 -m http.server {HTTP_PORT} --bind 127.0.0.1 --directory /tmp/www",
        ):
            testing.ok(http.post("/processes", json={"sandbox_id": sid, "command": command}))
        for port in (ECHO_PORT, HTTP_PORT):
            probe = f"for i in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && exit 0; sleep 0.1; done; exit 1"
            res = testing.ok(
                http.post(
                    "/execute", json={"sandbox_id": sid, "command": ["bash", "-c", probe], "timeout": 60}
                )
            )
            assert res["exit_code"] == 0, res  # type: ignore[index]
        yield Env(admin.url, sid)


def with_sandbox(env: Env, fn: Callable[[Sandbox], Awaitable[T]], api_key: str = KEY) -> T:
    """Run `fn` on the module's sandbox through a fresh SDK client, in a fresh event loop."""

    async def main() -> T:
        sb = Sandbox(SandboxConfig(base_url=env.url, api_key=api_key, sandbox_id=env.sandbox_id))
        try:
            return await fn(sb)
        finally:
            await sb.http.aclose()

    return asyncio.run(main())


# ---------------------------------------------------------------------------- network: port forwarding


def test_port_forward_stream(env: Env) -> None:
    async def go(sb: Sandbox) -> None:
        async with sb.network.port_forward(ECHO_PORT) as stream:
            for payload in (b"ping", bytes(range(256)) * 512):
                await stream.send(payload)
                got = b""
                while len(got) < len(payload):
                    got += await stream.receive()
                assert got == payload
        async with sb.network.port_forward(HTTP_PORT) as stream:
            await stream.send(b"GET /hi.txt HTTP/1.0\r\n\r\n")
            reply = await stream.read()  # HTTP/1.0: until the server closes
            assert reply.startswith(b"HTTP/1.0 200") and reply.endswith(b"hello")
            assert stream.close_code == 1000

    with_sandbox(env, go)


def test_local_forward_serves_plain_http_clients(env: Env) -> None:
    async def go(sb: Sandbox) -> None:
        async with sb.network.local_forward(HTTP_PORT) as fwd, httpx.AsyncClient() as http:
            assert fwd.port > 0 and fwd.remote_port == HTTP_PORT
            replies = await asyncio.gather(
                *(http.get(f"http://{fwd.host}:{fwd.port}/hi.txt") for _ in range(4))
            )
            assert [(r.status_code, r.text) for r in replies] == [(200, "hello")] * 4
            assert fwd.last_error is None

    with_sandbox(env, go)


def test_port_forward_errors_say_why(env: Env) -> None:
    async def closed_port(sb: Sandbox) -> None:
        async with sb.network.port_forward(7999) as stream:
            with pytest.raises(PortForwardError) as err:
                await stream.receive()
        assert err.value.code == 1011 and "port 7999" in err.value.reason and "refused" in err.value.reason
        async with sb.network.port_forward(80) as stream:
            with pytest.raises(PortForwardError) as err:
                await stream.receive()
        assert err.value.code == 1008 and err.value.reason.startswith("port:")
        # A local listener to a closed port: the local connection ends at once, and the forward says why.
        async with sb.network.local_forward(7999) as fwd:
            reader, writer = await asyncio.open_connection(fwd.host, fwd.port)
            assert await asyncio.wait_for(reader.read(), 30) == b""
            writer.close()
            assert fwd.last_error and "refused" in fwd.last_error

    async def wrong_key(sb: Sandbox) -> None:
        with pytest.raises(PortForwardError) as err:
            async with sb.network.port_forward(ECHO_PORT):
                pass
        assert err.value.code == 401 and "API key" in err.value.reason

    with_sandbox(env, closed_port)
    with_sandbox(env, wrong_key, api_key="wrong")
