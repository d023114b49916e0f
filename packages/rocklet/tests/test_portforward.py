"""`WS /portforward` against a real rocklet process and a real TCP server: bytes both ways, clean closes from
either side, and every refusal as a close code with a reason naming what was wrong."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from rocklet.portforward import close_reason, parse_port
from rocklet.testing import RunningRocklet, free_port


class _Echo(socketserver.BaseRequestHandler):
    """Echoes until the client closes; `QUIT` makes the server close first."""

    def handle(self) -> None:
        while data := self.request.recv(65536):
            if data.startswith(b"QUIT"):
                self.request.sendall(b"bye")
                return
            self.request.sendall(data)


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _open(rocklet: RunningRocklet, query: str, token: str | None = "") -> ClientConnection:
    """A WebSocket to the rocklet, with its own key unless `token` says otherwise (None: no key)."""
    assert rocklet.url
    key = rocklet.token if token == "" else token
    headers = {"X-API-Key": key} if key is not None else {}
    return connect(
        rocklet.url.replace("http://", "ws://") + "/portforward" + query,
        additional_headers=headers,
        open_timeout=30,
        max_size=None,
    )


def _closed(ws: ClientConnection) -> tuple[int | None, str | None]:
    with pytest.raises(ConnectionClosed):
        while True:
            ws.recv(timeout=30)
    return ws.close_code, ws.close_reason


def _recv_exactly(ws: ClientConnection, n: int) -> bytes:
    got = b""
    while len(got) < n:
        frame = ws.recv(timeout=30)
        assert isinstance(frame, bytes), "TCP bytes come back as binary frames"
        got += frame
    return got


def test_bytes_relay_both_ways(rocklet: RunningRocklet, echo_port: int) -> None:
    with _open(rocklet, f"?port={echo_port}") as ws:
        ws.send(b"\x00\x01hello\xff")
        assert _recv_exactly(ws, 8) == b"\x00\x01hello\xff"
        ws.send("text frames are bytes too")
        assert _recv_exactly(ws, 25) == b"text frames are bytes too"
        blob = bytes(range(256)) * 4096  # 1 MiB: split into several TCP reads and frames
        ws.send(blob)
        assert _recv_exactly(ws, len(blob)) == blob


def test_server_close_closes_the_socket_cleanly(rocklet: RunningRocklet, echo_port: int) -> None:
    with _open(rocklet, f"?port={echo_port}") as ws:
        ws.send(b"QUIT")
        assert _recv_exactly(ws, 3) == b"bye"
        code, reason = _closed(ws)
    assert code == 1000
    assert f"port {echo_port}" in (reason or "") and "closed" in (reason or "")


def test_client_close_reaches_the_server(rocklet: RunningRocklet, echo_port: int) -> None:
    server_eof = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_one() -> None:
        conn, _ = listener.accept()
        with conn:
            while conn.recv(4096):
                pass
            server_eof.set()

    threading.Thread(target=serve_one, daemon=True).start()
    try:
        with _open(rocklet, f"?port={port}") as ws:
            ws.send(b"ping")
        assert server_eof.wait(30), "the TCP server never saw the client's close"
    finally:
        listener.close()


def test_closed_port_says_so(rocklet: RunningRocklet) -> None:
    port = free_port()  # just released: nothing listens on it
    with _open(rocklet, f"?port={port}") as ws:
        code, reason = _closed(ws)
    assert code == 1011
    assert f"port {port}" in (reason or "") and "refused" in (reason or "")


@pytest.mark.parametrize("query", ["", "?port=", "?port=abc", "?port=80", "?port=70000", "?port=-1"])
def test_bad_port_is_refused_naming_it(rocklet: RunningRocklet, query: str) -> None:
    with _open(rocklet, query) as ws:
        code, reason = _closed(ws)
    assert code == 1008
    assert (reason or "").startswith("port:")


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_wrong_key_is_refused(rocklet: RunningRocklet, echo_port: int, token: str | None) -> None:
    with pytest.raises(InvalidStatus) as err:
        _open(rocklet, f"?port={echo_port}", token=token)
    assert err.value.response.status_code == 403


def test_parse_port_and_reason_limits() -> None:
    assert parse_port("1024") == 1024 and parse_port("65535") == 65535
    for raw in (None, "", " 8080", "8_080", "١٢٣٤", "1023", "65536", "x" * 100):
        with pytest.raises(ValueError, match=r"^port:"):
            parse_port(raw)
    long = "é" * 200
    assert len(close_reason(long).encode()) <= 123 and close_reason("short") == "short"
