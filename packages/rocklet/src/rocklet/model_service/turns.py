"""The turn queue: requests an agent sent, parked until the trainer answers them, in index order.

One queue is one episode: indexes start at 1 (as upstream), `end()` records the agent's exit, `reset()` starts
the next episode. Everything runs on the rocklet's event loop, so no locks: waiters sleep on one event that is
replaced whenever something changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from rock.actions import ModelTurn


class QueueFull(Exception):
    """More requests are parked than the service allows."""


class SessionEnded(Exception):
    """The agent has exited (or the episode was reset) while a request waited for its answer."""


@dataclass
class Turn:
    index: int
    request: dict[str, Any]
    answer: asyncio.Future[dict[str, Any]]
    received_at: float = field(default_factory=time.monotonic)


class TurnQueue:
    def __init__(self, max_pending: int) -> None:
        self.max_pending = max_pending
        self._turns: dict[int, Turn] = {}  # received and not answered yet
        self._last = 0
        self._ended = False
        self._exit_code: int | None = None
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ the agent's side

    def park(self, request: dict[str, Any]) -> Turn:
        """Give `request` the next index and park it; the caller awaits `turn.answer`."""
        if self._ended:
            raise SessionEnded("the session has ended: the agent's episode is over")
        if len(self._turns) >= self.max_pending:
            raise QueueFull(f"{len(self._turns)} requests already wait for an answer (max_pending)")
        self._last += 1
        turn = Turn(self._last, request, asyncio.get_running_loop().create_future())
        self._turns[turn.index] = turn
        self._notify()
        return turn

    def count(self) -> int:
        """Number a request that is not parked (a proxied one), so the log's indexes stay one sequence."""
        self._last += 1
        return self._last

    def forget(self, turn: Turn) -> None:
        """The agent gave up on `turn` (its request timed out or the connection closed)."""
        self._turns.pop(turn.index, None)
        if not turn.answer.done():
            turn.answer.cancel()

    # ------------------------------------------------------------------ the trainer's side

    def answer(self, index: int, payload: dict[str, Any]) -> bool:
        """Answer request `index`; False when it is not waiting (answered already, given up, never sent)."""
        if index > self._last:
            raise ValueError(f"index: request {index} has not arrived yet (the last is {self._last})")
        turn = self._turns.pop(index, None)
        if turn is None or turn.answer.done():
            return False
        turn.answer.set_result(payload)
        self._notify()
        return True

    async def next_after(self, index: int, timeout: float) -> ModelTurn:
        """Request `index + 1` once it has arrived, or the session's end, or `timed_out` after `timeout` s."""
        deadline = time.monotonic() + timeout
        want = index + 1
        while True:
            turn = self._turns.get(want)
            if turn is not None:
                return ModelTurn(index=want, request=turn.request)
            if self._ended and want > self._last:
                return ModelTurn(index=want, session_end=True, exit_code=self._exit_code)
            if want <= self._last:
                raise ValueError(f"index: request {want} was answered or given up already")
            left = deadline - time.monotonic()
            if left <= 0:
                return ModelTurn(index=want, timed_out=True)
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)

    # ------------------------------------------------------------------ the episode

    def end(self, exit_code: int | None) -> None:
        """The agent exited: waiting requests fail, the trainer's next call sees `session_end`."""
        if self._ended:
            return
        self._ended, self._exit_code = True, exit_code
        for turn in self._turns.values():
            if not turn.answer.done():
                turn.answer.set_exception(SessionEnded("the agent's session ended"))
        self._turns.clear()
        self._notify()

    def reset(self) -> None:
        self.end(None)
        self._last, self._ended, self._exit_code = 0, False, None
        self._notify()

    @property
    def last(self) -> int:
        return self._last

    @property
    def pending(self) -> list[int]:
        return sorted(self._turns)

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def exit_code(self) -> int | None:
        return self._exit_code

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
