"""`sandbox.network` / `sandbox.fs` / `sandbox.process` against a real `rock-admin serve` (API keys on) and a
real sandbox with an echo and an HTTP server running inside it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

testing = pytest.importorskip("rock_admin.testing", reason="the SDK tests need rock-admin (test extra)")

from rock.actions import Command, ReadFileRequest, WriteFileBytesRequest  # noqa: E402
from rock.sdk.sandbox.client import Sandbox  # noqa: E402
from rock.sdk.sandbox.fs import ChmodRequest, ChownRequest  # noqa: E402
from rock.sdk.sandbox.portforward import PortForwardError  # noqa: E402
from rock.sdk.sandbox.speedup.types import SpeedupType  # noqa: E402

T = TypeVar("T")
KEY = "sdk-helpers-key"
ECHO, ECHO_PORT, HTTP_PORT = testing.ECHO, testing.ECHO_PORT, testing.HTTP_PORT


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testing.SandboxRef]:
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
        yield testing.SandboxRef(admin.url, sid, KEY)


# ---------------------------------------------------------------------------- network: port forwarding


def test_port_forward_stream(env: testing.SandboxRef) -> None:
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

    env.call(go)


def test_local_forward_serves_plain_http_clients(env: testing.SandboxRef) -> None:
    async def go(sb: Sandbox) -> None:
        async with sb.network.local_forward(HTTP_PORT) as fwd, httpx.AsyncClient() as http:
            assert fwd.port > 0 and fwd.remote_port == HTTP_PORT
            replies = await asyncio.gather(
                *(http.get(f"http://{fwd.host}:{fwd.port}/hi.txt") for _ in range(4))
            )
            assert [(r.status_code, r.text) for r in replies] == [(200, "hello")] * 4
            assert fwd.last_error is None

    env.call(go)


def test_port_forward_errors_say_why(env: testing.SandboxRef) -> None:
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

    env.call(closed_port)
    env.call(wrong_key, api_key="wrong")


# ---------------------------------------------------------------------------- fs


def test_fs_chmod_chown(env: testing.SandboxRef) -> None:
    async def go(sb: Sandbox) -> None:
        await sb.write_file_by_path("x", "/tmp/perm/a/f.txt")

        async def stat(fmt: str, path: str) -> str:
            return (await sb.execute(Command(command=["stat", "-c", fmt, path]))).stdout.strip()

        res = await sb.fs.chmod(ChmodRequest(paths=["/tmp/perm/a/f.txt"], mode="600"))
        assert res.success and await stat("%a", "/tmp/perm/a/f.txt") == "600"
        res = await sb.fs.chmod(ChmodRequest(paths=["/tmp/perm"], mode="700", recursive=True))
        assert res.success and await stat("%a", "/tmp/perm/a") == "700"
        assert await stat("%a", "/tmp/perm/a/f.txt") == "700"
        missing = await sb.fs.chmod(ChmodRequest(paths=["/tmp/perm/nope"]))
        assert not missing.success and "No such file" in missing.message
        res = await sb.fs.chown(ChownRequest(remote_user="root", paths=["/tmp/perm"], recursive=True))
        assert res.success and await stat("%U", "/tmp/perm/a/f.txt") == "root"
        bad = await sb.fs.chown(ChownRequest(remote_user="no-such-user", paths=["/tmp/perm"]))
        assert not bad.success and "no-such-user" in bad.message
        with pytest.raises(ValueError, match=r"^paths:"):
            await sb.fs.chmod(ChmodRequest(paths=[]))

    env.call(go)


def test_fs_upload_dir_replaces_the_target(env: testing.SandboxRef, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "top.txt").write_text("top")
    (src / "sub" / "deep.bin").write_bytes(b"\x00\xff" * 1000)

    async def go(sb: Sandbox) -> None:
        await sb.write_file_by_path("stale", "/tmp/updir/old.txt")
        obs = await sb.fs.upload_dir(src, "/tmp/updir", extract_timeout=60)
        assert obs.exit_code == 0, obs
        listing = await sb.execute(Command(command=["sh", "-c", "cd /tmp/updir && find . -type f | sort"]))
        assert listing.stdout.split() == ["./sub/deep.bin", "./top.txt"]
        assert await sb.read_file_bytes_all("/tmp/updir/sub/deep.bin") == b"\x00\xff" * 1000
        leftovers = await sb.execute(
            Command(command=["sh", "-c", "ls /tmp/rock_upload_* 2>/dev/null | wc -l"])
        )
        assert leftovers.stdout.strip() == "0", "the uploaded archive is removed"
        missing = await sb.fs.upload_dir(tmp_path / "nope", "/tmp/updir")
        assert missing.exit_code == 1 and missing.failure_reason.startswith("source_dir: not found")
        relative = await sb.fs.upload_dir(src, "tmp/updir")
        assert relative.exit_code == 1 and relative.failure_reason.startswith("target_dir:")

    env.call(go)


def test_fs_download_file(env: testing.SandboxRef, tmp_path: Path) -> None:
    async def go(sb: Sandbox) -> None:
        await sb.write_file_bytes(WriteFileBytesRequest(path="/tmp/dl/data.bin", content_base64="AAEC/w=="))
        res = await sb.fs.download_file("/tmp/dl/data.bin", tmp_path / "out" / "data.bin")
        assert res.success and (tmp_path / "out" / "data.bin").read_bytes() == b"\x00\x01\x02\xff"
        directory = await sb.fs.download_file("/tmp/dl", tmp_path / "dir.bin")
        assert not directory.success and directory.message.startswith("remote_path:")
        assert not (tmp_path / "dir.bin").exists()

    env.call(go)


# ---------------------------------------------------------------------------- process


def test_process_execute_script(env: testing.SandboxRef) -> None:
    async def go(sb: Sandbox) -> None:
        obs = await sb.process.execute_script("echo from-script; exit 4", wait_timeout=60)
        assert obs.exit_code == 4 and obs.output.strip() == "from-script"
        left = await sb.execute(Command(command=["sh", "-c", "ls /tmp/script_*.sh 2>/dev/null | wc -l"]))
        assert left.stdout.strip() == "0", "cleanup removes the script"
        obs = await sb.process.execute_script("echo kept", script_name="kept.sh", cleanup=False)
        assert (
            obs.exit_code == 0
            and (await sb.read_file(ReadFileRequest(path="/tmp/kept.sh"))).content == "echo kept"
        )
        bad = await sb.process.execute_script("true", script_name="../etc/x.sh")
        assert bad.exit_code == 1 and bad.failure_reason.startswith("script_name:")

    env.call(go)


# ---------------------------------------------------------------------------- network.speedup


def test_speedup_pip_sets_the_mirror(env: testing.SandboxRef) -> None:
    async def go(sb: Sandbox) -> None:
        obs = await sb.network.speedup(SpeedupType.PIP, "https://mirrors.example.com/", timeout=60)
        assert obs.exit_code == 0, obs
        got = await sb.execute(Command(command=["sh", "-c", "pip3 config get global.index-url"]))
        assert got.stdout.strip() == "https://mirrors.example.com/pypi/simple/"
        host = await sb.execute(Command(command=["sh", "-c", "pip3 config get global.trusted-host"]))
        assert host.stdout.strip() == "mirrors.example.com"

    env.call(go)


def test_speedup_github_and_apt(env: testing.SandboxRef) -> None:
    host_files = {
        p: Path(p).read_bytes()
        for p in ("/etc/hosts", "/etc/apt/sources.list.d/debian.sources")
        if Path(p).exists()
    }

    async def sh(sb: Sandbox, command: str) -> str:
        return (await sb.execute(Command(command=["sh", "-c", command]))).stdout

    async def go(sb: Sandbox) -> None:
        writable = (await sb.execute(Command(command=["test", "-w", "/etc/hosts"]))).exit_code == 0
        others = await sh(sb, "grep -v github.com /etc/hosts")
        github = await sb.network.speedup(SpeedupType.GITHUB, "10.0.0.1")
        apt = await sb.network.speedup("apt", "http://mirrors.example.com")
        if not writable:  # a read-only root: nothing can change, and both say so
            assert github.exit_code == 1 and "/etc/hosts is not writable" in github.output
            assert apt.exit_code == 1 and "not writable" in apt.output, apt
            return
        assert github.exit_code == 0 and apt.exit_code == 0, (github, apt)
        again = await sb.network.speedup(SpeedupType.GITHUB, "20.205.243.166")  # replaces the older entry
        assert again.exit_code == 0
        assert (await sh(sb, "grep github.com /etc/hosts")).split("\n")[:-1] == ["20.205.243.166 github.com"]
        assert await sh(sb, "grep -v github.com /etc/hosts") == others, "the other entries stay"
        sources = await sh(sb, "cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null")
        assert "http://mirrors.example.com/debian" in sources and "deb.debian.org" not in sources

    env.call(go)
    for path, content in host_files.items():
        assert Path(path).read_bytes() == content, f"the host's {path} changed"


def test_speedup_bad_input_is_named(env: testing.SandboxRef) -> None:
    async def go(sb: Sandbox) -> None:
        for kind, value in ((SpeedupType.PIP, "mirrors.example.com"), (SpeedupType.GITHUB, "999.1.1.1")):
            bad = await sb.network.speedup(kind, value)
            assert bad.exit_code == 1 and bad.output.startswith("speedup_value:"), bad
        unknown = await sb.network.speedup("yum", "http://mirrors.example.com")
        assert unknown.exit_code == 1 and unknown.output.startswith("speedup_type:")

    env.call(go)
