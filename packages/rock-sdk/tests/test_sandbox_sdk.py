"""The SDK against a real `rock-admin serve` (real sandboxes): the seed examples as written, and the rest."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

testing = pytest.importorskip("rock_admin.testing", reason="the SDK tests need rock-admin (test extra)")

import rock  # noqa: E402
from rock.exceptions import NonZeroExitCodeError, RockError  # noqa: E402
from rock.sdk.sandbox.client import (  # noqa: E402
    Sandbox,
    SandboxError,
    SandboxGroup,
    SandboxRequestError,
    SandboxStartError,
    SandboxUnreachableError,
)
from rock.sdk.sandbox.config import SandboxConfig, SandboxGroupConfig  # noqa: E402
from rock.sdk.sandbox.request import Command, CreateBashSessionRequest  # noqa: E402


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with testing.running_admin(tmp_path_factory.mktemp("sdk-admin")) as admin:
        old = os.environ.get("ROCK_BASE_URL")
        os.environ["ROCK_BASE_URL"] = admin.url
        try:
            yield admin.url
        finally:
            if old is None:
                os.environ.pop("ROCK_BASE_URL", None)
            else:
                os.environ["ROCK_BASE_URL"] = old


def test_seed_example_as_written(base_url: str) -> None:
    async def main() -> str:
        config = SandboxConfig(image="python:3.11", memory="8g", cpus=2.0)
        sandbox = Sandbox(config)
        await sandbox.start()
        await sandbox.create_session(CreateBashSessionRequest(session="bash-1"))
        result = await sandbox.arun(cmd="echo Hello Rock", session="bash-1")
        await sandbox.stop()
        return result.output

    assert asyncio.run(main()).strip() == "Hello Rock"


def test_rock_make_loop_as_written(base_url: str) -> None:
    env = rock.make("game:Sokoban-v0-easy")
    observation, info = env.reset(seed=42)
    assert isinstance(observation, str)
    observation, reward, terminated, truncated, info = env.step("\\boxed{up}")
    assert isinstance(reward, float) and isinstance(terminated, bool) and isinstance(truncated, bool)
    assert isinstance(info, dict)
    env.close()
    env.close()  # idempotent


def test_sandbox_surface(base_url: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with Sandbox(SandboxConfig(memory="512m", cpus=1)) as sb:
            assert sb.sandbox_id and (await sb.is_alive()).is_alive
            # normal arun: temp session; a non-zero exit raises (upstream), check="silent" returns it.
            assert (await sb.arun("echo $((6*7))")).output.strip() == "42"
            with pytest.raises(NonZeroExitCodeError) as err:
                await sb.arun("false")
            assert sb.sandbox_id in str(err.value)
            assert (await sb.arun("(exit 5)", check="silent")).exit_code == 5
            # nohup: a background process with its real exit code; output_file keeps the output.
            obs = await sb.arun("echo from-nohup; exit 3", mode="nohup", wait_timeout=30)
            assert obs.exit_code == 3 and obs.output.strip() == "from-nohup"
            obs = await sb.arun("echo in-file", mode="nohup", output_file="/tmp/out/log.txt")
            assert obs.exit_code == 0 and obs.output.strip() == "in-file"
            # files both ways
            await sb.write_file_by_path("hello", "/tmp/x/y.txt")
            from rock.actions import ReadFileRequest

            assert (await sb.read_file(ReadFileRequest(path="/tmp/x/y.txt"))).content == "hello"
            src = tmp_path / "up.bin"
            src.write_bytes(b"\x00\xffdata")
            assert (await sb.upload_by_path(src, "/tmp/up.bin")).success
            back = await sb.download("/tmp/up.bin", tmp_path / "down.bin")
            assert back.read_bytes() == b"\x00\xffdata"
            with pytest.raises(FileNotFoundError):
                await sb.download("/tmp/nope", tmp_path / "nope")
            # background process + streaming
            from rock.actions import StartProcessRequest

            proc = await sb.start_process(StartProcessRequest(command="for i in 1 2 3; do echo $i; done"))
            chunks = b"".join([c async for c in sb.stream_process(proc.process_id)])
            assert chunks.split() == [b"1", b"2", b"3"]
            status = await sb.get_status()
            assert status.state == "running" and status.limits_enforced in (True, False)
            sid = sb.sandbox_id
        # stopped: data-plane calls fail with a typed error naming the sandbox
        again = Sandbox(SandboxConfig())
        await again.attach(sid)
        with pytest.raises(SandboxRequestError) as err:
            await again.arun("echo hi", session="s")
        assert sid in str(err.value) and "not running" in str(err.value)
        await again.close()

    asyncio.run(main())


def test_start_failures_are_typed_and_explained(base_url: str) -> None:
    async def main() -> None:
        with pytest.raises(SandboxStartError) as err:
            await Sandbox(SandboxConfig(image="nope:1")).start()
        assert "available images" in str(err.value) and "python:3.11" in str(err.value)
        with pytest.raises(SandboxStartError) as err:
            await Sandbox(SandboxConfig(memory="512m", startup_timeout=0.001)).start()
        assert "startup timeout" in str(err.value) or "did not become alive" in str(err.value)

    asyncio.run(main())


def test_one_error_tree_for_wire_and_client_errors(base_url: str) -> None:
    """A failed command (rebuilt from the wire) and an unreachable admin are both RockErrors; the unreachable
    one says so by its type, so callers need not look at `__cause__`."""

    async def main() -> None:
        sandbox = Sandbox(SandboxConfig(memory="512m"))
        await sandbox.start()
        try:
            with pytest.raises(RockError) as failed:
                await sandbox.execute(Command(command=["bash", "-c", "exit 3"], check=True))
            assert isinstance(failed.value, NonZeroExitCodeError)
        finally:
            await sandbox.close()
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(SandboxUnreachableError) as lost:
            await Sandbox(SandboxConfig(base_url=dead, request_retries=0)).attach("sb-anything")
        assert isinstance(lost.value, SandboxError) and isinstance(lost.value, RockError)
        assert isinstance(lost.value, ConnectionError) and "cannot reach the admin" in str(lost.value)

    asyncio.run(main())


def test_sandbox_group(base_url: str) -> None:
    async def main() -> None:
        group = SandboxGroup(SandboxGroupConfig(size=3, start_concurrency=3, memory="512m", cpus=1))
        await group.start()
        outs = await asyncio.gather(*(sb.arun("hostname") for sb in group.sandbox_list))
        assert len({o.output.strip() for o in outs}) == 3
        await group.stop()

    asyncio.run(main())


def test_retry_through_the_admin_runs_the_command_once(base_url: str) -> None:
    """A proxy in front of the admin cuts the connection after the command ran: the SDK sends the call again
    with the same X-Request-ID, the admin passes it on, and the rocklet answers from its replay cache."""
    from rocklet.testing import dropping_proxy

    async def main() -> None:
        with dropping_proxy(base_url) as proxy:
            sb = Sandbox(SandboxConfig(base_url=proxy.url, memory="512m", cpus=1))
            await sb.start()
            try:
                await sb.create_session(CreateBashSessionRequest(session="r"))
                proxy.arm(1)
                obs = await sb.arun("echo ran >> /tmp/count; echo done", session="r")
                assert obs.output.strip() == "done" and proxy.dropped == 1
                from rock.actions import Command

                proxy.arm(1)
                res = await sb.execute(Command(command="echo ran >> /tmp/count", shell=True))
                assert res.exit_code == 0 and proxy.dropped == 2
                # once each (the admin strips the output, as upstream's does)
                assert (await sb.arun("cat /tmp/count", session="r")).output == "ran\nran"
            finally:
                await sb.close()

    asyncio.run(main())
