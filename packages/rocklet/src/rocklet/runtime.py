"""Everything one rocklet holds: sessions, background processes, GEM envs, the model service, its state
directory."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from rocklet.config import RockletConfig
from rocklet.envs import EnvHost
from rocklet.model_service import ModelService
from rocklet.processes import ProcessManager
from rocklet.replay import ReplayCache
from rocklet.sessions import SessionManager
from rocklet.stats import Sampler


class LocalRuntime:
    """One rocklet's state and services (SWE-ReX's name for the runtime that runs where the commands run; the
    admin's `rock_admin.runtimes` are what start sandboxes, a different thing)."""

    def __init__(self, config: RockletConfig) -> None:
        self.config = config
        if config.state_dir:
            self.state_dir = Path(config.state_dir)
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._own_state_dir = False
        else:
            self.state_dir = Path(tempfile.mkdtemp(prefix="rocklet-"))
            self._own_state_dir = True
        # Sessions may run as another user (remote_user): they must reach their rc files.
        self.state_dir.chmod(0o711)
        self.staging = self.state_dir / "staging"
        self.staging.mkdir(exist_ok=True)
        self.staging.chmod(0o700)
        self.sessions = SessionManager(self.state_dir, config.max_output_bytes, config.session_env)
        self.processes = ProcessManager(
            self.state_dir / "processes", config.max_read_bytes, config.max_process_output_bytes
        )
        self.envs = EnvHost()
        self.model_service = ModelService(self.state_dir, self.processes)
        self.replay = ReplayCache(
            ttl=config.replay_ttl_seconds,
            max_entries=config.replay_max_entries,
            max_bytes=config.replay_max_bytes,
            max_entry_bytes=config.replay_max_entry_bytes,
        )
        self.sampler = Sampler()

    async def close_all(self) -> None:
        """`/close`: every session, process and env goes; the rocklet keeps serving."""
        await self.sessions.close_all()
        await self.processes.close_all()
        await self.envs.close_all()

    async def shutdown(self) -> None:
        await self.model_service.stop()
        await self.close_all()
        if self._own_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)
