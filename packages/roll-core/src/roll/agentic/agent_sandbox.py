"""One env slot's ROCK sandbox for agent-native episodes: started once and reused, only the agent restarts.

Per episode: the model service is reset (request indexes from 1 again), the work dir is recreated and the
task's setup runs in it, the agent starts there; the trainer then takes the agent's intercepted requests
(`next_turn` / `answer_and_next`) until the agent exits, and the task's verifier runs in the same dir.
Synchronous: each SDK call runs on the shared event loop (`roll.envs.event_loop`) under a timeout, so an
env manager thread per slot can drive it. A dead sandbox shows as an SDK error and `healthy()` false.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
import uuid
from pathlib import Path
from typing import Any

from roll.agentic.tasks import Task
from roll.config.schema import AgentNativeConfig
from roll.envs.event_loop import run_sync
from roll.envs.sokoban_sandbox import _sandbox_alive, _stop_quietly

# slack over a call's own timeout for the HTTP round trips through the admin
CALL_SLACK_S = 15.0


def default_command(python: str) -> str:
    """The shipped Python bash agent (rock-sdk's `rock.agents.bash_agent`) as a command template."""
    return (
        f"{shlex.quote(python)} -m rock.agents.bash_agent --task-file {{task_file}} --max-turns {{max_turns}}"
    )


def rock_agents_dir() -> str:
    """Where rock-sdk's shipped agents are (e.g. bash_agent.sh): the sandbox sees the host's files there."""
    spec = importlib.util.find_spec("rock.agents")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("agent.command uses {rock_agents_dir} but rock-sdk has no rock.agents package")
    return str(Path(next(iter(spec.submodule_search_locations))))


class AgentSandbox:
    """A sandbox with the model service started, for one agent run at a time."""

    def __init__(self, cfg: AgentNativeConfig) -> None:
        self.cfg = cfg
        self.python = cfg.python or sys.executable  # replaced by the model service's once started
        self.sandbox: Any = None
        self.sandbox_id: str | None = None
        self.root = f"/tmp/roll-agent-{uuid.uuid4().hex[:12]}"
        self.workdir = f"{self.root}/work"
        self.task_file = f"{self.root}/task.txt"
        self.episodes = 0
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the sandbox and its model service (once; later episodes reuse both)."""
        if self.sandbox is not None:
            return
        if self._closed:
            raise RuntimeError("agent sandbox: closed")
        from rock.sdk.sandbox.client import Sandbox
        from rock.sdk.sandbox.config import SandboxConfig
        from rock.sdk.sandbox.model_service import ModelServiceConfig

        kwargs = {"base_url": self.cfg.base_url} if self.cfg.base_url else {}
        sandbox = Sandbox(
            SandboxConfig(
                image=self.cfg.image,
                memory=self.cfg.memory,
                cpus=self.cfg.cpus,
                auto_clear_seconds=self.cfg.auto_clear_seconds,
                startup_timeout=self.cfg.startup_timeout_s,
                **kwargs,
            )
        )
        try:
            run_sync(sandbox.start(), self.cfg.startup_timeout_s + CALL_SLACK_S)
            self.sandbox_id = sandbox.sandbox_id
            service = ModelServiceConfig(
                type="local", port=self.cfg.model_service_port, request_timeout=self.cfg.request_timeout_s
            )
            status = run_sync(sandbox.agent.model_service.start(service), 60 + CALL_SLACK_S)
            # the interpreter the rocklet runs, which the sandbox can run too (rock-sdk's agents need it)
            self.python = self.cfg.python or status.python or self.python
        except BaseException:
            _stop_quietly(sandbox)
            raise
        self.sandbox = sandbox

    def healthy(self) -> bool:
        """Worth reusing after a failed episode: the admin knows the sandbox as running."""
        return not self._closed and self.sandbox is not None and _sandbox_alive(self.sandbox)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        sandbox, self.sandbox = self.sandbox, None
        if sandbox is not None:
            _stop_quietly(sandbox)

    # ------------------------------------------------------------------ one episode

    def begin(self, task: Task, command: str | None, max_turns: int) -> Any:
        """Fresh state for `task` (model service reset, work dir recreated, setup run), then the agent
        started in the work dir; returns the SDK's AgentRun. A failing setup raises, naming the task."""
        self.start()
        sb = self.sandbox
        if self.episodes:
            run_sync(sb.agent.model_service.reset(), 30 + CALL_SLACK_S)
        self.episodes += 1
        prepare = (
            f"rm -rf {self.root} && mkdir -p {self.workdir} && cd {self.workdir} && "
            f"printf '%s' {shlex.quote(task.prompt)} > {self.task_file} && {{\n{task.setup}\n}}"
        )
        code, output = self.sh(prepare, self.cfg.setup_timeout_s)
        if code != 0:
            raise RuntimeError(
                f"task {task.name!r}: setup exited {code} in sandbox {self.sandbox_id}: {output[-1000:]}"
            )
        values = {
            "python": shlex.quote(self.python),
            "task_file": shlex.quote(self.task_file),
            "max_turns": str(max_turns),
            "workdir": shlex.quote(self.workdir),
        }
        template = command or default_command(self.python)
        if "{rock_agents_dir}" in template:
            values["rock_agents_dir"] = shlex.quote(rock_agents_dir())
        env = {"PYTHON": self.python, **{str(k): str(v) for k, v in (self.cfg.env or {}).items()}}
        return run_sync(
            sb.agent.start(template.format(**values), env=env, cwd=self.workdir), 30 + CALL_SLACK_S
        )

    def next_turn(self, after: int, timeout: float) -> Any:
        ms = self.sandbox.agent.model_service
        return run_sync(ms.next_turn(after=after, timeout=timeout), timeout + CALL_SLACK_S)

    def answer_and_next(self, index: int, payload: dict, timeout: float) -> Any:
        ms = self.sandbox.agent.model_service
        return run_sync(ms.answer_and_next(index, payload, timeout=timeout), timeout + CALL_SLACK_S)

    def stop_agent(self, run: Any) -> None:
        """Kill an agent that did not exit by itself (timeout, turn or length limit)."""
        run_sync(self.sandbox.agent.kill(run), 10 + CALL_SLACK_S)

    def agent_output(self, run: Any, limit: int = 2000) -> str:
        out = run_sync(self.sandbox.process_output(run.process_id), 10 + CALL_SLACK_S)
        return (out.stdout + out.stderr)[-limit:]

    def verify(self, task: Task) -> tuple[int | None, str]:
        """The task's verifier in the work dir: (exit code, output); exit code None when it timed out."""
        return self.sh(f"cd {self.workdir} && {{\n{task.verify}\n}}", self.cfg.verifier_timeout_s)

    def sh(self, script: str, timeout: float) -> tuple[int | None, str]:
        """`bash -c script` with $PYTHON set: (exit code, stdout+stderr); (None, reason) on its timeout."""
        from rock.actions import Command

        command = Command(
            command=["bash", "-c", script],
            timeout=timeout,
            env={"PYTHON": self.python},
            merge_output_streams=True,
        )
        try:
            reply = run_sync(self.sandbox.execute(command), timeout + CALL_SLACK_S)
        except TimeoutError as exc:  # the SDK's CommandTimeoutError is a TimeoutError too
            if self.sandbox is not None and _sandbox_alive(self.sandbox):
                return None, f"timed out after {timeout:g} s: {exc}"
            raise
        return reply.exit_code, reply.stdout + reply.stderr
