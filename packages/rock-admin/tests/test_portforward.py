"""Port forwarding end to end: a WebSocket client -> admin (write node, and a read node) -> the sandbox's
rocklet -> a real TCP server started inside a real sandbox; refusals come as close codes with reasons."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from rock_admin.testing import ECHO, ECHO_PORT, HTTP_PORT, PREFIX, Admin, ok, running_admin, start_sandbox

KEY = "pf-key"
AUTH = {"X-API-Key": KEY}


def _wait_listening(http: httpx.Client, sid: str, port: int) -> None:
    probe = f"for i in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && exit 0; sleep 0.1; done; exit 1"
    res = ok(http.post("/execute", json={"sandbox_id": sid, "command": ["bash", "-c", probe], "timeout": 60}))
    assert res["exit_code"] == 0, f"nothing listens on {port} in the sandbox: {res}"  # type: ignore[index]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Admin, Admin, str]]:
    """A write node and a read node behind one key, and a sandbox running an echo and an HTTP server."""
    state = tmp_path_factory.mktemp("pf-admin")
    with (
        running_admin(state, role="write", api_keys=KEY) as write,
        running_admin(state, role="read", write_url=write.url, api_keys=KEY) as read,
        write.client(headers=AUTH) as http,
    ):
        sid = start_sandbox(http)
        ok(http.post("/write_file", json={"sandbox_id": sid, "path": "/tmp/echo.py", "content": ECHO}))
        ok(http.post("/write_file", json={"sandbox_id": sid, "path": "/tmp/www/hi.txt", "content": "hello"}))
        for command in (
            f"python3 /tmp/echo.py {ECHO_PORT}",
            f"python3 -m http.server {HTTP_PORT} --bind 127.0.0.1 --directory /tmp/www",
        ):
            ok(http.post("/processes", json={"sandbox_id": sid, "command": command}))
        _wait_listening(http, sid, ECHO_PORT)
        _wait_listening(http, sid, HTTP_PORT)
        yield write, read, sid


def _open(admin: Admin, sid: str, query: str, headers: dict[str, str] | None = None) -> ClientConnection:
    url = admin.url.replace("http://", "ws://") + f"{PREFIX}/sandboxes/{sid}/portforward{query}"
    return connect(
        url, additional_headers=AUTH if headers is None else headers, open_timeout=30, max_size=None
    )


def _read_to_close(ws: ClientConnection) -> tuple[bytes, int | None, str | None]:
    data = b""
    with pytest.raises(ConnectionClosed):
        while True:
            frame = ws.recv(timeout=30)
            assert isinstance(frame, bytes)
            data += frame
    return data, ws.close_code, ws.close_reason


def _recv_exactly(ws: ClientConnection, n: int) -> bytes:
    got = b""
    while len(got) < n:
        frame = ws.recv(timeout=30)
        assert isinstance(frame, bytes)
        got += frame
    return got


def test_http_server_in_the_sandbox_through_the_admin(cluster: tuple[Admin, Admin, str]) -> None:
    write, _, sid = cluster
    with _open(write, sid, f"?port={HTTP_PORT}") as ws:
        ws.send(b"GET /hi.txt HTTP/1.0\r\nHost: sandbox\r\n\r\n")
        reply, code, reason = _read_to_close(ws)
    assert reply.startswith(b"HTTP/1.0 200") and reply.endswith(b"\r\n\r\nhello"), reply[:200]
    # HTTP/1.0: the server closes after its reply, and that close comes through both hops as a clean one.
    assert code == 1000 and f"port {HTTP_PORT}" in (reason or "")


@pytest.mark.parametrize("node", ["write", "read"])
def test_echo_both_ways_and_client_close(cluster: tuple[Admin, Admin, str], node: str) -> None:
    write, read, sid = cluster
    admin = write if node == "write" else read
    blob = bytes(range(256)) * 1024
    for _ in range(2):  # a closed forward leaves the server and the route usable
        with _open(admin, sid, f"?port={ECHO_PORT}") as ws:
            ws.send(b"ping")
            assert _recv_exactly(ws, 4) == b"ping"
            ws.send(blob)
            assert _recv_exactly(ws, len(blob)) == blob


def test_closed_port_gives_the_reason(cluster: tuple[Admin, Admin, str]) -> None:
    write, _, sid = cluster
    with _open(write, sid, "?port=7999") as ws:
        _, code, reason = _read_to_close(ws)
    assert code == 1011 and "port 7999" in (reason or "") and "refused" in (reason or "")


@pytest.mark.parametrize("query", ["", "?port=http", "?port=22", "?port=65536"])
def test_bad_port_is_named(cluster: tuple[Admin, Admin, str], query: str) -> None:
    write, _, sid = cluster
    with _open(write, sid, query) as ws:
        _, code, reason = _read_to_close(ws)
    assert code == 1008 and (reason or "").startswith("port:")


def test_unknown_sandbox_is_named(cluster: tuple[Admin, Admin, str]) -> None:
    write, _, _ = cluster
    with _open(write, "no-such-sandbox", f"?port={ECHO_PORT}") as ws:
        _, code, reason = _read_to_close(ws)
    assert code == 1008 and "no-such-sandbox" in (reason or "") and "not found" in (reason or "")


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}])
def test_wrong_key_is_refused_before_the_handshake(
    cluster: tuple[Admin, Admin, str], headers: dict[str, str]
) -> None:
    write, read, sid = cluster
    for admin in (write, read):
        with pytest.raises(InvalidStatus) as err:
            _open(admin, sid, f"?port={ECHO_PORT}", headers=headers)
        assert err.value.response.status_code == 401
        assert b"invalid or missing API key" in err.value.response.body


def test_stopping_the_sandbox_ends_the_forward_with_a_reason(cluster: tuple[Admin, Admin, str]) -> None:
    write, _, _ = cluster
    with write.client(headers=AUTH) as http:
        sid = start_sandbox(http)
        ok(http.post("/write_file", json={"sandbox_id": sid, "path": "/tmp/echo.py", "content": ECHO}))
        ok(http.post("/processes", json={"sandbox_id": sid, "command": f"python3 /tmp/echo.py {ECHO_PORT}"}))
        _wait_listening(http, sid, ECHO_PORT)
        with _open(write, sid, f"?port={ECHO_PORT}") as ws:
            ws.send(b"ping")
            assert _recv_exactly(ws, 4) == b"ping"
            ok(http.post("/stop", json={"sandbox_id": sid}))
            _, code, reason = _read_to_close(ws)
    # The rocklet dies with its sandbox: the admin says the route to it was lost. (Should the echo server's
    # exit reach the rocklet first, or the rocklet shut down gracefully, that close is passed on instead.)
    lost = code == 1011 and sid in (reason or "") and "lost" in (reason or "")
    passed_on = code in (1000, 1001, 1012)
    assert lost or passed_on, (code, reason)
