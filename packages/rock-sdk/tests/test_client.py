"""The async rocklet client against a real rocklet over TCP and a Unix socket."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rock.actions import (
    BashAction,
    BashInterruptAction,
    CloseBashSessionRequest,
    Command,
    CreateBashSessionRequest,
    EnvCloseRequest,
    EnvMakeRequest,
    EnvResetRequest,
    EnvStepRequest,
    ExceptionTransfer,
    ReadFileBytesRequest,
    ReadFileRequest,
    StartProcessRequest,
    WriteFileBytesRequest,
    WriteFileRequest,
)
from rock.exceptions import (
    AuthenticationError,
    BashIncorrectSyntaxError,
    CommandTimeoutError,
    InvalidRequestError,
    NonZeroExitCodeError,
    RemoteException,
    SessionDoesNotExistError,
    SessionExistsError,
)
from rock.rocklet_client import RockletClient, rebuild_exception
from rocklet.testing import RunningRocklet, dropping_proxy, running_rocklet

TOKEN = "sdk-token"


@pytest.fixture(scope="module")
def tcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRocklet]:
    with running_rocklet(tmp_path_factory.mktemp("tcp"), token=TOKEN) as info:
        yield info


@pytest.fixture(scope="module")
def uds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRocklet]:
    with running_rocklet(tmp_path_factory.mktemp("uds"), token=TOKEN, uds=True) as info:
        yield info


def _client(info: RunningRocklet, **kwargs: object) -> RockletClient:
    if info.uds:
        return RockletClient(uds=info.uds, auth_token=TOKEN, **kwargs)  # type: ignore[arg-type]
    return RockletClient(info.url, auth_token=TOKEN, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["tcp", "uds"])
def test_sessions_and_errors(kind: str, request: pytest.FixtureRequest) -> None:
    info: RunningRocklet = request.getfixturevalue(kind)

    async def main() -> None:
        async with _client(info) as c:
            assert (await c.is_alive()).is_alive
            await c.create_session(CreateBashSessionRequest(session="s"))
            obs = await c.run_in_session(BashAction(command="echo hi; x=1", session="s"))
            assert (obs.output, obs.exit_code) == ("hi\n", 0)
            with pytest.raises(NonZeroExitCodeError) as err:
                await c.run_in_session(BashAction(command="false", session="s"))
            assert err.value.extra_info["exit_code"] == 1
            with pytest.raises(SessionExistsError):
                await c.create_session(CreateBashSessionRequest(session="s"))
            with pytest.raises(SessionDoesNotExistError):
                await c.run_in_session(BashAction(command="true", session="missing"))
            with pytest.raises(BashIncorrectSyntaxError):
                await c.run_in_session(BashAction(command="if then fi (", session="s"))
            with pytest.raises(CommandTimeoutError) as timeout:
                await c.run_in_session(BashAction(command="sleep 100", session="s", timeout=0.3))
            assert isinstance(timeout.value, TimeoutError)
            assert (await c.run_in_session(BashInterruptAction(session="s"))).exit_code == 0
            assert (await c.run_in_session(BashAction(command="echo $x", session="s"))).output == "1\n"
            await c.close_session(CloseBashSessionRequest(session="s"))

    asyncio.run(main())


def test_connection_reuse(tcp: RunningRocklet) -> None:
    async def main() -> None:
        async with _client(tcp) as c:
            for _ in range(20):
                await c.execute(Command(command=["true"]))
            pool = c._http._transport._pool  # type: ignore[attr-defined]
            assert len(pool.connections) == 1

    asyncio.run(main())


def test_commands_files_processes(tcp: RunningRocklet, tmp_path: Path) -> None:
    async def main() -> None:
        async with _client(tcp) as c:
            r = await c.execute(Command(command="echo a; echo b >&2", shell=True))
            assert (r.stdout, r.stderr, r.exit_code) == ("a\n", "b\n", 0)
            with pytest.raises(FileNotFoundError):
                await c.read_file(ReadFileRequest(path=str(tmp_path / "nope")))
            await c.write_file(WriteFileRequest(path=str(tmp_path / "t.txt"), content="text"))
            assert (await c.read_file(ReadFileRequest(path=str(tmp_path / "t.txt")))).content == "text"
            import base64

            await c.write_file_bytes(
                WriteFileBytesRequest(
                    path=str(tmp_path / "b.bin"), content_base64=base64.b64encode(b"\x00\xff").decode()
                )
            )
            got = await c.read_file_bytes(ReadFileBytesRequest(path=str(tmp_path / "b.bin")))
            assert base64.b64decode(got.content_base64) == b"\x00\xff"
            src = tmp_path / "src"
            (src / "deep").mkdir(parents=True)
            (src / "deep" / "f").write_bytes(b"data")
            await c.upload(src, str(tmp_path / "up"))
            assert (tmp_path / "up" / "deep" / "f").read_bytes() == b"data"
            await c.download(str(tmp_path / "up"), tmp_path / "down")
            assert (tmp_path / "down" / "deep" / "f").read_bytes() == b"data"
            await c.download(str(tmp_path / "b.bin"), tmp_path / "b2.bin")
            assert (tmp_path / "b2.bin").read_bytes() == b"\x00\xff"

            p = await c.start_process(StartProcessRequest(command="echo p1; sleep 0.2; echo p2; exit 4"))
            streamed = b"".join([chunk async for chunk in c.stream_process(p.process_id)])
            assert streamed == b"p1\np2\n"
            done = await c.wait_process(p.process_id, timeout=30)
            assert done.exit_code == 4
            out = await c.process_output(p.process_id)
            assert out.stdout == "p1\np2\n"
            assert p.process_id in {x.process_id for x in await c.list_processes()}
            long = await c.start_process(StartProcessRequest(command=["sleep", "100"], shell=False))
            await c.kill_process(long.process_id, "SIGKILL")
            assert (await c.wait_process(long.process_id, timeout=30)).exit_code == 137
            await c.remove_process(long.process_id)

            made = await c.env_make(EnvMakeRequest(env_id="game:Sokoban-v0-easy"))
            reset = await c.env_reset(EnvResetRequest(sandbox_id=made.sandbox_id, seed=1))
            assert isinstance(reset.observation, str)
            step = await c.env_step(EnvStepRequest(sandbox_id=made.sandbox_id, action="\\boxed{left}"))
            assert isinstance(step.reward, float)
            await c.env_close(EnvCloseRequest(sandbox_id=made.sandbox_id))
            assert "game:Sokoban-v0-easy" in (await c.env_list()).env_id
            stats = await c.get_statistics()
            assert stats.memory_used_bytes > 0

    asyncio.run(main())


def test_auth_and_invalid_requests(tcp: RunningRocklet) -> None:
    async def main() -> None:
        async with RockletClient(tcp.url, auth_token="wrong") as c:
            with pytest.raises(AuthenticationError):
                await c.execute(Command(command=["true"]))
            assert not (await c.is_alive()).is_alive
        async with _client(tcp) as c:
            with pytest.raises(InvalidRequestError) as err:
                await c._call(
                    "POST",
                    "/execute",
                    type(Command(command="x")),
                    None,
                    json={"command": "x", "timeout": "no"},
                )
            assert "timeout" in str(err.value)
        async with RockletClient("127.0.0.1:1", auth_token=TOKEN) as dead:
            alive = await dead.is_alive(timeout=1)
            assert not alive.is_alive and alive.message

    asyncio.run(main())


def test_rebuild_exception_fallbacks() -> None:
    exc = rebuild_exception(ExceptionTransfer(message="m", class_path="builtins.KeyError"))
    assert isinstance(exc, KeyError)
    exc = rebuild_exception(
        ExceptionTransfer(
            message="no env",
            class_path="somepkg.errors.Weird",
            bases=["somepkg.errors.Base", "builtins.ValueError"],
        )
    )
    assert isinstance(exc, RemoteException)
    assert isinstance(exc, ValueError)
    assert exc.class_path == "somepkg.errors.Weird"
    # Never rebuilds non-Exception BaseExceptions such as SystemExit.
    assert isinstance(
        rebuild_exception(ExceptionTransfer(message="x", class_path="builtins.SystemExit")), RemoteException
    )


def test_retry_after_a_lost_connection_runs_the_command_once(tcp: RunningRocklet, tmp_path: Path) -> None:
    """The proxy cuts the connection after the rocklet ran the command: the client retries with the same
    X-Request-ID and gets the first run's reply; the command ran once (the counter file has one line)."""
    counter = tmp_path / "count"

    async def main() -> None:
        with dropping_proxy(tcp.url or "") as proxy:
            async with RockletClient(proxy.url, auth_token=TOKEN) as c:
                await c.create_session(CreateBashSessionRequest(session="retry"))
                proxy.arm(1)
                obs = await c.run_in_session(
                    BashAction(command=f"echo ran >> {counter}; echo done", session="retry")
                )
                assert obs.output == "done\n"
                assert proxy.dropped == 1
                assert counter.read_text() == "ran\n"
                proxy.arm(1)
                res = await c.execute(Command(command=f"echo ran >> {counter}", shell=True))
                assert res.exit_code == 0 and counter.read_text() == "ran\nran\n"
            # Retries are bounded: a connection that keeps failing ends in the error, still after one run.
            async with RockletClient(proxy.url, auth_token=TOKEN, retries=2, retry_backoff=0.01) as c:
                proxy.arm(10)
                with pytest.raises(httpx.RemoteProtocolError):
                    await c.execute(Command(command=f"echo ran >> {counter}", shell=True))
                assert proxy.dropped == 2 + 3
                assert counter.read_text() == "ran\n" * 3

    asyncio.run(main())
