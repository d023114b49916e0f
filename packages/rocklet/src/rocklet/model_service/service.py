"""One sandbox's model service: the agent-facing server on 127.0.0.1, the turn queue the trainer drains, the
log file, the watched agent. It runs on the rocklet's own event loop, so a trainer's call reaches a parked
request without a hop."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from rock.actions import (
    SESSION_END,
    AnswerRequest,
    AntiCallRequest,
    ModelServiceConfig,
    ModelServiceStatus,
    ModelTurn,
    WatchAgentRequest,
)
from rocklet.model_service.agent_api import AgentApi
from rocklet.model_service.logfile import LOG_NAME, LogReader, request_line, response_line
from rocklet.model_service.turns import Turn, TurnQueue
from rocklet.processes import ProcessManager
from rocklet.server import QuietServer

if TYPE_CHECKING:
    from rocklet.model_service.proxy import Proxy

#: How often parked requests look for answers written to the log file (upstream polls at the same rate).
LOG_POLL_S = 0.1


class ModelServiceError(RuntimeError):
    """The model service cannot do what was asked (not started, port taken, unknown process)."""


class ModelService:
    def __init__(self, state_dir: Path, processes: ProcessManager) -> None:
        self.state_dir = state_dir
        self.processes = processes
        self.config = ModelServiceConfig()
        self.queue = TurnQueue(self.config.max_pending)
        self.proxy: Proxy | None = None
        self.log_file: Path | None = None
        self._server: QuietServer | None = None
        self._serving: asyncio.Task[None] | None = None
        self._port: int | None = None
        self._watches: set[asyncio.Task[None]] = set()
        self._log_poller: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self, config: ModelServiceConfig) -> ModelServiceStatus:
        """Serve with `config`; a running service is stopped first (a new config is a new service)."""
        await self.stop()
        log_dir = Path(config.log_dir) if config.log_dir else self.state_dir / "model_service"
        log_dir.mkdir(parents=True, exist_ok=True)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", config.port))
        except OSError as exc:
            sock.close()
            reason = (
                "is in use in the sandbox" if exc.errno == errno.EADDRINUSE else f"cannot be bound: {exc}"
            )
            raise ModelServiceError(f"port: {config.port} {reason}") from None
        sock.listen(256)
        self.config, self.queue = config, TurnQueue(config.max_pending)
        self.log_file = log_dir / LOG_NAME
        self.log_file.write_text("")
        self.proxy = None
        if config.type == "proxy":
            # httpx (a tenth of the rocklet's start-up imports) only where a sandbox proxies
            from rocklet.model_service.proxy import Proxy

            self.proxy = Proxy(config, self._record)
        self._port = sock.getsockname()[1]
        uv = uvicorn.Config(AgentApi(self), lifespan="off", log_level="warning", access_log=False)
        self._server = QuietServer(uv)
        self._serving = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started and not self._serving.done():
            await asyncio.sleep(0.005)
        if self._serving.done():
            exc = self._serving.exception()
            self._server, self._serving = None, None
            raise ModelServiceError(f"the model service did not start: {exc!r}")
        return self.status()

    async def stop(self) -> ModelServiceStatus:
        self.reset()
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._serving, 5.0)
        if self.proxy is not None:
            await self.proxy.aclose()
        self._server = self._serving = self.proxy = None
        self._port = None
        return self.status()

    def reset(self) -> None:
        """A new episode: parked requests fail, indexes start at 1, the old agent's exit no longer counts."""
        for task in self._watches:
            task.cancel()
        self._watches.clear()
        self.queue.reset()
        if self.log_file is not None and self.log_file.exists():
            self.log_file.write_text("")

    def status(self) -> ModelServiceStatus:
        running = self._server is not None
        return ModelServiceStatus(
            running=running,
            type=self.config.type if running else None,
            port=self._port,
            base_url=f"http://127.0.0.1:{self._port}/v1" if running else None,
            models=list(self.config.models) if running else [],
            requests=self.queue.last,
            pending=self.queue.pending,
            session_ended=self.queue.ended,
            agent_exit_code=self.queue.exit_code,
            log_file=str(self.log_file) if self.log_file else None,
            python=sys.executable,
        )

    def _need_running(self) -> None:
        if self._server is None:
            raise ModelServiceError("the model service is not running: start it first (model_service/start)")

    # ------------------------------------------------------------------ the agent's side

    def park(self, request: dict[str, Any]) -> Turn:
        turn = self.queue.park(request)
        self._append(request_line(turn.index, request))
        if self._log_poller is None or self._log_poller.done():
            self._log_poller = asyncio.create_task(self._poll_log())
        return turn

    def forget(self, turn: Turn) -> None:
        self.queue.forget(turn)

    def _record(self, request: dict[str, Any], response: Any, status: int) -> None:
        """A proxied turn: in the log (as a local turn would be) and in the recording file."""
        index = self.queue.count()
        self._append(request_line(index, request))
        self._append(response_line(index, response if isinstance(response, dict) else {"raw": response}))
        if self.config.recording_file:
            from rocklet.model_service.proxy import append_recording

            append_recording(Path(self.config.recording_file), request, response, status)

    def _append(self, line: str) -> None:
        if self.log_file is not None:
            with self.log_file.open("a", encoding="utf-8") as f:
                f.write(line)

    async def _poll_log(self) -> None:
        """While requests are parked, answers written to the log (the file channel) answer them."""
        assert self.log_file is not None
        reader = LogReader(self.log_file)
        while self.queue.pending:
            for line in reader.new_lines():
                if line.kind == "response" and line.body is not None and line.index in self.queue.pending:
                    self.queue.answer(line.index, line.body)
            await asyncio.sleep(LOG_POLL_S)

    # ------------------------------------------------------------------ the trainer's side

    async def anti_call(self, req: AntiCallRequest) -> ModelTurn:
        self._need_running()
        if req.index > 0 and req.response_payload is not None:
            self._answer(req.index, req.response_payload)
        return await self.queue.next_after(req.index, req.timeout)

    def answer(self, req: AnswerRequest) -> ModelServiceStatus:
        self._need_running()
        self._answer(req.index, req.response_payload)
        return self.status()

    def _answer(self, index: int, payload: dict[str, Any]) -> None:
        if self.queue.answer(index, payload):
            self._append(response_line(index, payload))

    async def watch(self, req: WatchAgentRequest) -> ModelServiceStatus:
        """End the session when the agent exits: a rocklet-started process with its exit code, else a bare pid."""
        self._need_running()
        if req.process_id is not None:
            process = self.processes.get(req.process_id)
            task = asyncio.create_task(self._watch_process(process))
        else:
            assert req.pid is not None
            own = next((p for p in self.processes.list() if p.pid == req.pid), None)
            if own is not None:
                task = asyncio.create_task(self._watch_process(self.processes.get(own.process_id)))
            else:
                task = asyncio.create_task(self._watch_pid(req.pid))
        self._watches.add(task)
        task.add_done_callback(self._watches.discard)
        return self.status()

    async def _watch_process(self, process: Any) -> None:
        await process.wait(None)
        self._end(process.info().exit_code)

    async def _watch_pid(self, pid: int) -> None:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._end(None)
            return
        except OSError as exc:
            raise ModelServiceError(f"pid: cannot watch process {pid}: {exc}") from None
        exited = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()
        loop.add_reader(fd, lambda: exited.done() or exited.set_result(None))
        try:
            await exited
        finally:
            loop.remove_reader(fd)
            os.close(fd)
        self._end(None)

    def _end(self, exit_code: int | None) -> None:
        if not self.queue.ended:
            self.queue.end(exit_code)
            self._append(SESSION_END + "\n")
