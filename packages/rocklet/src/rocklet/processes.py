"""Background processes: started detached (own process group), output to files, real exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from rock.actions import ProcessInfo, ProcessOutputResponse, StartProcessRequest
from rock.exceptions import ProcessDoesNotExistError, ProcessExistsError
from rocklet.child import Child


class BackgroundProcess:
    """One started process. Its stdout/stderr go to files, each capped at `max_bytes` (then a marker line, and
    the rest is read and discarded so the process never blocks on a full pipe); readers wait on `_changed`."""

    def __init__(self, process_id: str, request: StartProcessRequest, out_dir: Path, max_bytes: int) -> None:
        self.id = process_id
        self.request = request
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.exit_code: int | None = None
        self.signal: int | None = None
        self.paths = {"stdout": out_dir / f"{process_id}.stdout", "stderr": out_dir / f"{process_id}.stderr"}
        self.sizes = {"stdout": 0, "stderr": 0}
        self._truncated: set[str] = set()
        self._max = max_bytes
        self._changed = asyncio.Event()
        self._exited = asyncio.Event()
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        self._files = {name: os.open(path, flags, 0o600) for name, path in self.paths.items()}
        env = {**os.environ, **request.env} if request.env is not None else None
        try:
            self.child = Child(
                request.command,
                shell=request.shell,
                env=env,
                cwd=request.cwd,
                merge_output=request.merge_output_streams,
                stdout=lambda chunk: self._write("stdout", chunk),
                stderr=lambda chunk: self._write("stderr", chunk),
            )
        except BaseException:
            self._close_files()
            for path in self.paths.values():
                path.unlink(missing_ok=True)
            raise
        self.child.exited.add_done_callback(self._on_exit)
        self.child.drained.add_done_callback(lambda _: self._on_drained())

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _write(self, name: str, chunk: bytes) -> None:
        if name in self._truncated:
            return
        kept = chunk[: self._max - self.sizes[name]]
        if len(kept) < len(chunk):
            self._truncated.add(name)
            kept += truncation_marker(self._max)
        try:
            self.sizes[name] += os.write(self._files[name], kept)
        except OSError:  # the sandbox's disk is full: keep what is there, read on so the process never blocks
            self._truncated.add(name)
        self._notify()

    def _on_drained(self) -> None:
        self._close_files()
        self._notify()

    def _close_files(self) -> None:
        for fd in self._files.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._files = {}

    def _on_exit(self, exited: asyncio.Future[int]) -> None:
        if exited.cancelled():
            return
        code = exited.result()
        self.ended_at = time.time()
        if code < 0:
            self.signal = -code
            self.exit_code = 128 - code
        else:
            self.exit_code = code
        self._exited.set()
        self._notify()

    @property
    def running(self) -> bool:
        return not self._exited.is_set()

    def info(self) -> ProcessInfo:
        return ProcessInfo(
            process_id=self.id,
            pid=self.child.pid,
            command=self.request.command,
            running=self.running,
            exit_code=self.exit_code,
            signal=self.signal,
            started_at=self.started_at,
            ended_at=self.ended_at,
            stdout_bytes=self.sizes["stdout"],
            stderr_bytes=self.sizes["stderr"],
        )

    def read(self, name: str, offset: int, max_bytes: int) -> tuple[bytes, int]:
        size = self.sizes[name]
        offset = min(max(offset, 0), size)
        n = min(size - offset, max_bytes)
        if n <= 0:
            return b"", offset
        with self.paths[name].open("rb") as f:
            f.seek(offset)
            data = f.read(n)
        return data, offset + len(data)

    async def wait(self, timeout: float | None) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._exited.wait(), timeout)

    async def stream(self, name: str, offset: int) -> AsyncIterator[bytes]:
        """Yield the output from `offset` as it is written, until the process ended and its pipe closed."""
        while True:
            changed = self._changed
            data, offset = self.read(name, offset, 1 << 20)
            if data:
                yield data
                continue
            if self.child.drained.done():
                return
            if self.running:
                await changed.wait()
                continue
            # The process is gone but a child of it may hold the pipe: stop once it has been quiet a while.
            try:
                await asyncio.wait_for(changed.wait(), 0.5)
            except asyncio.TimeoutError:
                return

    def kill(self, sig: int) -> None:
        if self.running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.child.pid, sig)

    async def remove(self) -> None:
        self.kill(signal.SIGKILL)
        await self.wait(2.0)
        self.child.close_pipes()
        for path in self.paths.values():
            path.unlink(missing_ok=True)


def truncation_marker(limit: int) -> bytes:
    """The line that ends a capped output file: what was kept, and where the limit is set."""
    return (
        f"\n[rocklet: output truncated at {limit} bytes; the rest was discarded "
        "(max_process_output_bytes / ROCKLET_MAX_PROCESS_OUTPUT_BYTES)]\n"
    ).encode()


def parse_signal(value: str | int) -> int:
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    name = str(value).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ValueError(f"signal: unknown signal {value!r}") from None


class ProcessManager:
    def __init__(self, out_dir: Path, max_read_bytes: int, max_output_bytes: int) -> None:
        self._dir = out_dir
        self._dir.mkdir(parents=True, exist_ok=True)
        self._max_read = max_read_bytes
        if max_output_bytes < 1:
            raise ValueError(f"max_process_output_bytes: must be at least 1, not {max_output_bytes}")
        self._max_output = max_output_bytes
        self._procs: dict[str, BackgroundProcess] = {}

    def get(self, process_id: str) -> BackgroundProcess:
        try:
            return self._procs[process_id]
        except KeyError:
            raise ProcessDoesNotExistError(f"process {process_id!r} does not exist") from None

    async def start(self, request: StartProcessRequest) -> ProcessInfo:
        process_id = request.process_id or uuid.uuid4().hex[:12]
        if process_id in self._procs:
            raise ProcessExistsError(f"process {process_id!r} already exists")
        if not process_id.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"process_id: {process_id!r} may hold only letters, digits, '-' and '_'")
        process = BackgroundProcess(process_id, request, self._dir, self._max_output)
        self._procs[process_id] = process
        return process.info()

    def list(self) -> list[ProcessInfo]:
        return [p.info() for p in self._procs.values()]

    def output(
        self, process_id: str, stdout_offset: int, stderr_offset: int, max_bytes: int | None
    ) -> ProcessOutputResponse:
        process = self.get(process_id)
        limit = min(max_bytes or self._max_read, self._max_read)
        out, out_next = process.read("stdout", stdout_offset, limit)
        err, err_next = process.read("stderr", stderr_offset, limit)
        return ProcessOutputResponse(
            stdout=out.decode("utf-8", "backslashreplace"),
            stderr=err.decode("utf-8", "backslashreplace"),
            stdout_offset=out_next,
            stderr_offset=err_next,
            running=process.running,
            exit_code=process.exit_code,
        )

    async def wait(self, process_id: str, timeout: float | None) -> ProcessInfo:
        process = self.get(process_id)
        await process.wait(timeout)
        return process.info()

    async def kill(self, process_id: str, sig: str | int) -> ProcessInfo:
        process = self.get(process_id)
        process.kill(parse_signal(sig))
        await process.wait(0.5)
        return process.info()

    async def remove(self, process_id: str) -> ProcessInfo:
        process = self.get(process_id)
        del self._procs[process_id]
        await process.remove()
        return process.info()

    async def close_all(self) -> None:
        procs, self._procs = list(self._procs.values()), {}
        await asyncio.gather(*(p.remove() for p in procs), return_exceptions=True)
