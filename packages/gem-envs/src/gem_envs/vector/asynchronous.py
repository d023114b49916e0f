"""AsyncVectorEnv: envs stepped concurrently, in worker processes (default) or threads.

Processes sidestep the GIL: envs are split into `num_workers` contiguous shards, each owned by one
worker; a partial step only messages the workers owning the stepped envs. Env factories must be
picklable for the process backend (`functools.partial(gem_envs.make, env_id, **kw)` is).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, Literal

from gem_envs.vector.base import AutoresetMode, EnvFactory, EnvSlot, Transition, VectorEnv


class WorkerError(RuntimeError):
    """An env raised inside a worker process; the message carries the worker's traceback."""


def _worker_main(conn: Connection, env_fns: list[EnvFactory], mode: AutoresetMode) -> None:
    slots: list[EnvSlot] = []
    try:
        slots = [EnvSlot(fn(), mode) for fn in env_fns]
        conn.send(("ok", None))
        while True:
            command, payload = conn.recv()
            if command == "close":
                break
            try:
                if command == "reset":
                    result = [slots[i].reset(seed) for i, seed in payload]
                else:
                    result = [slots[i].step(action) for i, action in payload]
                conn.send(("ok", result))
            except Exception as exc:  # an env bug must reach the caller, not kill the worker silently
                conn.send(("error", (exc, traceback.format_exc())))
    except Exception as exc:
        conn.send(("error", (exc, traceback.format_exc())))
    finally:
        for slot in slots:
            slot.env.close()
        conn.close()


class AsyncVectorEnv(VectorEnv):
    def __init__(
        self,
        env_fns: Sequence[EnvFactory],
        backend: Literal["process", "thread"] = "process",
        num_workers: int | None = None,
        autoreset_mode: AutoresetMode = AutoresetMode.SAME_STEP,
    ) -> None:
        if backend not in ("process", "thread"):
            raise ValueError(f"backend: expected 'process' or 'thread', got {backend!r}")
        self.backend = backend
        self.num_envs = len(env_fns)
        mode = AutoresetMode(autoreset_mode)
        workers = max(1, min(num_workers or os.cpu_count() or 1, self.num_envs))
        self._closed = False
        if backend == "thread":
            self._slots = [EnvSlot(fn(), mode) for fn in env_fns]
            self._pool = ThreadPoolExecutor(max_workers=workers)
            return
        # Shard i owns envs [bounds[i], bounds[i+1]).
        bounds = [round(k * self.num_envs / workers) for k in range(workers + 1)]
        self._owner = [(w, i - bounds[w]) for w in range(workers) for i in range(bounds[w], bounds[w + 1])]
        ctx = mp.get_context("spawn")
        self._conns: list[Connection] = []
        self._procs: list[mp.process.BaseProcess] = []
        for w in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main, args=(child, list(env_fns[bounds[w] : bounds[w + 1]]), mode), daemon=True
            )
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        try:
            for w in range(workers):
                self._receive(w)
        except BaseException:
            self.close()
            raise

    def _receive(self, worker: int) -> Any:
        return self._raise_if_failed(worker, self._recv_reply(worker))

    def _recv_reply(self, worker: int) -> tuple[str, Any]:
        try:
            return self._conns[worker].recv()
        except EOFError:
            return "error", (None, "the worker process exited unexpectedly")

    @staticmethod
    def _raise_if_failed(worker: int, reply: tuple[str, Any]) -> Any:
        status, payload = reply
        if status == "error":
            exc, trace = payload
            raise WorkerError(f"vector env worker {worker} failed: {exc!r}\n{trace}") from exc
        return payload

    def _scatter(self, command: str, items: list[tuple[int, Any]]) -> list[Any]:
        """Send each worker the items of its envs, then gather the results back in `items` order."""
        per_worker: dict[int, list[tuple[int, Any]]] = {}
        for index, value in items:
            worker, local = self._owner[index]
            per_worker.setdefault(worker, []).append((local, value))
        for worker, payload in per_worker.items():
            self._conns[worker].send((command, payload))
        # Drain every reply before raising, so no stale error is left in a pipe for the next call.
        raw = {worker: self._recv_reply(worker) for worker in per_worker}
        replies = {worker: iter(self._raise_if_failed(worker, reply)) for worker, reply in raw.items()}
        return [next(replies[self._owner[index][0]]) for index, _ in items]

    def _reset_all(self, seeds: list[int | None]) -> list[tuple[str, dict[str, Any]]]:
        if self.backend == "thread":
            return list(
                self._pool.map(lambda pair: pair[0].reset(pair[1]), zip(self._slots, seeds, strict=True))
            )
        return self._scatter("reset", list(enumerate(seeds)))

    def _step_some(self, actions: dict[int, str]) -> list[Transition]:
        if self.backend == "thread":
            return list(self._pool.map(lambda item: self._slots[item[0]].step(item[1]), actions.items()))
        return self._scatter("step", list(actions.items()))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.backend == "thread":
            self._pool.shutdown(wait=True)
            for slot in self._slots:
                slot.env.close()
            return
        for conn in self._conns:
            with contextlib.suppress(BrokenPipeError, OSError):  # the worker may already be gone
                conn.send(("close", None))
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self._conns:
            conn.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()
