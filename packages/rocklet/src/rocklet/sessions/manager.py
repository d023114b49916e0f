"""The rocklet's sessions by name."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rock.actions import (
    BashAction,
    BashInterruptAction,
    BashObservation,
    CloseBashSessionRequest,
    CloseBashSessionResponse,
    CreateBashSessionRequest,
    CreateBashSessionResponse,
)
from rock.exceptions import SessionDoesNotExistError, SessionExistsError
from rocklet.sessions.bash import BashSession


class SessionManager:
    """Creates, runs and closes named sessions. A shell that exits on its own (`exit`) frees its name."""

    def __init__(
        self, state_dir: Path, max_output_bytes: int, base_env: dict[str, str] | None = None
    ) -> None:
        self._state_dir = state_dir
        self._max_output = max_output_bytes
        self._base_env = dict(base_env or {})
        self._sessions: dict[str, BashSession] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._sessions

    def names(self) -> list[str]:
        return list(self._sessions)

    async def create(self, request: CreateBashSessionRequest) -> CreateBashSessionResponse:
        if request.session in self._sessions:
            raise SessionExistsError(f"session {request.session!r} already exists")
        session = BashSession(
            request.session,
            request,
            state_dir=self._state_dir,
            max_output_bytes=self._max_output,
            base_env=self._base_env,
            on_exit=self._forget,
        )
        self._sessions[request.session] = session
        try:
            return await session.start()
        except BaseException:
            self._sessions.pop(request.session, None)
            raise

    def get(self, name: str) -> BashSession:
        try:
            return self._sessions[name]
        except KeyError:
            raise SessionDoesNotExistError(f"session {name!r} does not exist") from None

    async def run(self, action: BashAction | BashInterruptAction) -> BashObservation:
        session = self.get(action.session)
        if isinstance(action, BashInterruptAction):
            return await session.interrupt(action)
        return await session.run(action)

    async def close(self, request: CloseBashSessionRequest) -> CloseBashSessionResponse:
        session = self.get(request.session)
        del self._sessions[request.session]
        await session.close()
        return CloseBashSessionResponse()

    async def close_all(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)

    def _forget(self, session: BashSession) -> None:
        if self._sessions.get(session.name) is session:
            del self._sessions[session.name]
