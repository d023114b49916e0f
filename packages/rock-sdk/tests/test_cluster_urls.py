"""Separate read and write URLs in the SDK, against two tiny real HTTP servers that record what reaches them:
lifecycle calls go to `write_url`, the rest to a read node, and a read node that refuses connections is
skipped for the next one."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import ValidationError

from rock.actions import BashAction
from rock.sdk.sandbox.client import Sandbox
from rock.sdk.sandbox.config import SandboxConfig

OBSERVATION = {
    "session_type": "bash",
    "output": "hi\n",
    "exit_code": 0,
    "failure_reason": "",
    "expect_string": "",
}


class Node:
    """An HTTP server answering every POST with a Success envelope; `seen` lists the ops it got."""

    def __init__(self) -> None:
        seen: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                op = self.path.rsplit("/", 1)[-1]
                seen.append(op)
                result = OBSERVATION if op == "run_in_session" else None
                body = json.dumps({"status": "Success", "message": None, "error": None, "result": result})
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.seen = seen
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def nodes() -> Iterator[tuple[Node, Node]]:
    write, read = Node(), Node()
    try:
        yield write, read
    finally:
        write.close()
        read.close()


def _refusing_url() -> str:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_lifecycle_to_write_url_data_plane_to_a_live_read_node(nodes: tuple[Node, Node]) -> None:
    write, read = nodes
    config = SandboxConfig(sandbox_id="sb1", write_url=write.url, read_urls=[_refusing_url(), read.url])

    async def go() -> None:
        sandbox = Sandbox(config)
        for _ in range(3):
            assert (await sandbox.run_in_session(BashAction(command="echo hi", session="s"))).output == "hi\n"
        await sandbox.close()  # stop → the write node

    asyncio.run(go())
    assert read.seen == ["run_in_session"] * 3
    assert write.seen == ["stop"]


def test_without_separate_urls_everything_goes_to_base_url_and_url_setter_still_works(
    nodes: tuple[Node, Node],
) -> None:
    write, read = nodes

    async def go() -> None:
        sandbox = Sandbox(SandboxConfig(sandbox_id="sb1", base_url=write.url))
        await sandbox.run_in_session(BashAction(command="echo hi", session="s"))
        sandbox.url = read.url + "/apis/envs/sandbox/v1"  # upstream's setter: data plane and lifecycle move
        await sandbox.run_in_session(BashAction(command="echo hi", session="s"))
        await sandbox.close()

    asyncio.run(go())
    assert write.seen == ["run_in_session"]
    assert read.seen == ["run_in_session", "stop"]


def test_bad_urls_are_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"read_urls\[1\]"):
        SandboxConfig(read_urls=["http://a:1", "a:1"])
    with pytest.raises(ValidationError, match="write_url"):
        SandboxConfig(write_url="ftp://x")
