"""`sandbox.agent`: run an agent program in the sandbox with its LLM calls going to the model service.

    await sandbox.agent.install(RockAgentConfig(run_cmd="python -m my_agent --task ${prompt}"))
    obs = await sandbox.agent.run("fix the failing test")      # upstream's shape: blocks until the agent ends

or, for a trainer that answers the agent's turns while it runs:

    run = await sandbox.agent.start("python -m my_agent ...")   # OPENAI_BASE_URL etc. set, exit watched
    turn = await sandbox.agent.model_service.next_turn()
    ...
    info = await sandbox.agent.wait(run)

Nothing agent-specific lives here: the agent is any program that speaks OpenAI's chat API to `OPENAI_BASE_URL`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from rock.actions import BashObservation, ModelServiceConfig, ProcessInfo, StartProcessRequest
from rock.sdk.sandbox.model_service import ModelService

if TYPE_CHECKING:
    from rock.sdk.sandbox.client import Sandbox


class RockAgentConfig(BaseModel):
    """Upstream's names for what `install` and `run` need; `${prompt}` in `run_cmd` becomes the quoted prompt."""

    run_cmd: str
    env: dict[str, str] = Field(default_factory=dict)
    #: Directory the agent runs in (in the sandbox); None: the rocklet's.
    project_path: str | None = None
    agent_run_timeout: float = Field(default=1800.0, gt=0)
    #: The model service the agent's LLM calls go to; started by `install` (None: the defaults).
    model_service_config: ModelServiceConfig | None = None


@dataclass(frozen=True)
class AgentRun:
    process_id: str
    pid: int


class Agent:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.model_service = ModelService(sandbox)
        self.config: RockAgentConfig | None = None

    async def install(self, config: RockAgentConfig) -> None:
        self.config = config
        await self.model_service.start(config.model_service_config)

    async def run(self, prompt: str) -> BashObservation:
        """Run the installed agent on `prompt` until it exits or `agent_run_timeout` passes; its output and
        exit code (a timed-out agent is killed and reported as such)."""
        if self.config is None:
            raise RuntimeError("agent: call install(RockAgentConfig(...)) before run()")
        c = self.config
        run = await self.start(c.run_cmd.replace("${prompt}", shlex.quote(prompt)), c.env, c.project_path)
        info = await self.wait(run, c.agent_run_timeout)
        failure = ""
        if info.running:
            info = await self.kill(run)
            failure = f"the agent ran past agent_run_timeout={c.agent_run_timeout:g} s and was killed"
        out = await self.sandbox.process_output(run.process_id)
        return BashObservation(
            output=out.stdout + out.stderr, exit_code=info.exit_code, failure_reason=failure
        )

    async def start(
        self, command: str, env: dict[str, str] | None = None, cwd: str | None = None
    ) -> AgentRun:
        """Start `command` in the background with the model service in its environment (`OPENAI_BASE_URL`,
        `OPENAI_API_KEY`, `OPENAI_MODEL`; started with defaults if it is not running) and watch it: its exit
        ends the session the trainer sees."""
        status = await self.model_service.status()
        if not status.running:
            status = await self.model_service.start()
        key = self.model_service.config.api_key if self.model_service.config else ""
        service_env = {
            "OPENAI_BASE_URL": status.base_url or "",
            "OPENAI_API_KEY": key or "rock",
            "OPENAI_MODEL": status.models[0] if status.models else "",
        }
        info = await self.sandbox.start_process(
            StartProcessRequest(command=command, env={**service_env, **(env or {})}, cwd=cwd)
        )
        await self.model_service.watch_agent(process_id=info.process_id)
        return AgentRun(info.process_id, info.pid)

    async def wait(self, run: AgentRun, timeout: float | None = None) -> ProcessInfo:
        return await self.sandbox.wait_process(run.process_id, timeout=timeout)

    async def kill(self, run: AgentRun) -> ProcessInfo:
        await self.sandbox.kill_process(run.process_id, "SIGKILL")
        return await self.sandbox.wait_process(run.process_id, timeout=30)
