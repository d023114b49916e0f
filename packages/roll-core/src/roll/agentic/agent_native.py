"""Agent-native env manager (`custom_envs.<Tag>.env_manager_cls: agent_native`): a real agent program runs in
a ROCK sandbox per episode, unchanged; its LLM calls are intercepted and answered by the policy.

Per env slot one sandbox (`AgentSandbox`) lives across episodes; per episode the task's setup runs, the
agent starts, and each of its requests is rendered token-in-token-out (`roll.agentic.chat_tokens`), queued
for generation and answered. Generation is batched over slots: the manager's thread calls `generate` once
every slot still playing waits for it (or `batch_window_s` after the first request). When the agent exits
the task's verifier runs in the sandbox: reward 1.0 if it exits 0, else 0.0.

Every wait has a timeout: the agent's run (`agent_timeout_s`, then it is killed), each long-poll, setup,
verifier, generation. A sandbox that dies mid-episode fails the episode; the slot then gets a new sandbox
(as TrajEnvManager replaces a failed Sokoban sandbox) and the scheduler retries the episode.

The trajectory trains on its last segment: when an agent re-renders its history so that a request does not
extend the previous one (`prefix_divergence`), the earlier segment's tokens are left out rather than trained
under a context the model did not see (`trained_turn_frac` says how much of the episode was trained).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from roll.agentic.agent_sandbox import AgentSandbox
from roll.agentic.chat_tokens import ChatRenderer, TokenStream
from roll.agentic.env_manager import ChatFormatter, EnvFailure, EnvSlot, Trajectory, TrajEnvManager
from roll.agentic.tasks import Task, load_tasks
from roll.config.schema import AGENT_NATIVE_MANAGERS, AgentNativeConfig, CustomEnv
from roll.errors import EnvUnavailableError


def is_agent_native(custom: CustomEnv) -> bool:
    return custom.env_manager_cls in AGENT_NATIVE_MANAGERS


@dataclass
class AgentTrajectory(Trajectory):
    """A Trajectory plus what the replay check compares: each request as the agent sent it."""

    task: str = ""
    requests: list[dict] = field(default_factory=list)  # every answered request body, in order
    trained_turns: list[int] = field(default_factory=list)  # turns whose responses input_ids holds
    prompt_ends: list[int] = field(default_factory=list)  # per trained turn: where its prompt ends
    agent_exit_code: int | None = None
    agent_output: str = ""  # the tail of the agent's stdout and stderr
    verifier_exit_code: int | None = None
    verifier_output: str = ""


@dataclass
class _GenRequest:
    prompt_ids: list[int]
    budget: int
    future: cf.Future = field(default_factory=cf.Future)


class AgentNativeEnvManager(TrajEnvManager):
    """TrajEnvManager's interface (`run_episodes`, `replacements`, `close`) over agent episodes."""

    def __init__(
        self,
        formatter: ChatFormatter,
        sequence_length: int,
        generate: Callable,
        max_new_tokens: int,
        env_timeout_s: float = 600.0,
        max_workers: int = 8,
    ) -> None:
        super().__init__(formatter, sequence_length, generate, max_new_tokens, env_timeout_s, max_workers)
        self.renderer = ChatRenderer(formatter.tokenizer)
        self._tasks: dict[str, list[Task]] = {}

    @staticmethod
    def agent_config(custom: CustomEnv) -> AgentNativeConfig:
        return custom.agent or AgentNativeConfig()

    def tasks(self, slot: EnvSlot) -> list[Task]:
        if slot.tag not in self._tasks:
            cfg = self.agent_config(slot.custom)
            self._tasks[slot.tag] = load_tasks(cfg.task_file, cfg.tasks)
        return self._tasks[slot.tag]

    # ------------------------------------------------------------------ the rollout

    def run_episodes(
        self, slots: list[EnvSlot], seeds: list[int], ids: list[tuple[str, str, int]]
    ) -> list[Trajectory | EnvFailure]:
        # a queue per call: requests of a round that failed are never served in the next one
        requests: queue.Queue[_GenRequest] = queue.Queue()
        jobs = [
            self.pool.submit(self._episode, slot, seed, ident, requests)
            for slot, seed, ident in zip(slots, seeds, ids, strict=True)
        ]
        window = max(self.agent_config(s.custom).batch_window_s for s in slots) if slots else 0.0
        self._serve(jobs, requests, window)
        results: list[Trajectory | EnvFailure] = []
        for slot, job in zip(slots, jobs, strict=True):
            exc = job.exception()
            if isinstance(exc, EnvUnavailableError):
                raise exc
            if exc is not None:
                results.append(self._failure(slot, "agent episode", exc))
                continue
            traj = job.result()
            traj.metrics["sandbox_replaced"] = float(slot.replaced)
            slot.replaced = 0
            results.append(traj)
        self._report(0, "")
        return results

    def _serve(self, jobs: list[cf.Future], requests: queue.Queue, window: float) -> None:
        """Generate for the slots' requests until every episode is over; one `generate` call takes every
        request pending once all playing slots wait (or `window` s after the first one came)."""
        pending: list[_GenRequest] = []
        first = 0.0
        while True:
            try:
                item = requests.get(timeout=0.01 if pending else 0.05)
                if not pending:
                    first = time.monotonic()
                pending.append(item)
                continue  # take whatever else is queued before deciding
            except queue.Empty:
                pass
            playing = sum(not j.done() for j in jobs)
            if not pending and playing == 0:
                return
            if pending and (len(pending) >= playing or time.monotonic() - first >= window):
                self._report(0, f"waiting for generation ({len(pending)} agent requests)")
                try:
                    outputs = self.generate([r.prompt_ids for r in pending], [r.budget for r in pending])
                except BaseException as exc:
                    for r in pending:  # the episode threads stop waiting and fail
                        r.future.set_exception(exc)
                    raise
                for r, out in zip(pending, outputs, strict=True):
                    r.future.set_result(out)
                pending = []

    @staticmethod
    def _generate(requests: queue.Queue, prompt_ids: list[int], budget: int, timeout: float):
        request = _GenRequest(prompt_ids, budget)
        requests.put(request)
        try:
            return request.future.result(timeout)
        except cf.TimeoutError:
            raise TimeoutError(f"no generation within {timeout:g} s (agent.request_timeout_s)") from None

    def _episode(
        self, slot: EnvSlot, seed: int, ident: tuple[str, str, int], requests: queue.Queue
    ) -> AgentTrajectory:
        """One agent run in the slot's sandbox (runs in a pool thread)."""
        cfg = self.agent_config(slot.custom)
        tasks = self.tasks(slot)
        task = tasks[seed % len(tasks)]  # the same seed within a group: the group shares its task
        tgid, tid, episode_id = ident
        traj = AgentTrajectory(
            slot.env_id, slot.group_id, slot.tag, tgid, tid, episode_id, seed, task=task.name
        )
        if slot.env is None:
            slot.env = AgentSandbox(cfg)
        box: AgentSandbox = slot.env
        run = box.begin(task, cfg.command, cfg.max_turns)
        stream = TokenStream(self.renderer)
        try:
            stop = self._play(box, run, cfg, slot, stream, traj, requests)
        except BaseException:
            # an agent left running would send its requests into the sandbox's next episode
            with contextlib.suppress(Exception):
                box.stop_agent(run)
            raise
        if stop != "agent_exit":
            box.stop_agent(run)
        traj.agent_output = box.agent_output(run)
        traj.verifier_exit_code, traj.verifier_output = box.verify(task)
        reward = 1.0 if traj.verifier_exit_code == 0 else 0.0
        self._fill(traj, stream, task, reward, stop)
        self._report(1, "")
        return traj

    def _play(
        self,
        box: AgentSandbox,
        run: Any,
        cfg: AgentNativeConfig,
        slot: EnvSlot,
        stream: TokenStream,
        traj: AgentTrajectory,
        requests: queue.Queue,
    ) -> str:
        """Answer the agent's requests until it exits or a limit stops it; returns the stop reason."""
        from rock.sdk.sandbox.model_service import chat_completion

        deadline = time.monotonic() + cfg.agent_timeout_s
        answered = 0  # index of the last answered request
        turn = box.next_turn(0, min(cfg.poll_timeout_s, cfg.agent_timeout_s))
        stop = ""
        while True:
            left = deadline - time.monotonic()
            if turn.session_end:
                stop, traj.agent_exit_code = "agent_exit", turn.exit_code
                break
            if left <= 0:
                stop = "agent_timeout"
                break
            if turn.timed_out or turn.request is None:
                turn = box.next_turn(answered, min(cfg.poll_timeout_s, left))
                continue
            if stream.turns >= cfg.max_turns:
                stop = "max_turns"
                break
            request = turn.request
            step = stream.prompt(request.get("messages"), request.get("tools"))
            budget = min(
                slot.custom.max_tokens_per_step,
                self.max_new_tokens,
                self.sequence_length - len(step.prompt_ids),
            )
            if budget <= 0:  # the context is full: the agent is stopped before this turn
                stream.abandon()
                stop = "max_length"
                break
            out = self._generate(requests, step.prompt_ids, budget, cfg.request_timeout_s)
            ids = list(out.token_ids)
            text = stream.response(ids, list(out.log_probs))
            traj.requests.append(request)
            traj.texts.append((step.text, text))
            finish = "stop" if ids and ids[-1] == self.renderer.eos_id else "length"
            payload = chat_completion(
                text,
                model=str(request.get("model") or "policy"),
                finish_reason=finish,
                prompt_tokens=len(step.prompt_ids),
                completion_tokens=len(ids),
            )
            answered = turn.index
            turn = box.answer_and_next(answered, payload, max(0.1, min(cfg.poll_timeout_s, left)))
        return stop

    def _fill(self, traj: AgentTrajectory, stream: TokenStream, task: Task, reward: float, stop: str) -> None:
        """Tokens of the last segment (trailing ids after the last model token dropped), scores, metrics."""
        if stream.segments:
            seg = stream.segments[-1]
            end = (
                max(i for i, m in enumerate(seg.model_token) if m) + 1
                if any(seg.model_token)
                else len(seg.input_ids)
            )
            traj.input_ids, traj.model_token = seg.input_ids[:end], seg.model_token[:end]
            traj.infer_logprobs, traj.prompt_length = seg.logprobs[:end], seg.prompt_length
            traj.trained_turns, traj.prompt_ends = list(seg.turns), list(seg.prompt_ends)
        else:  # the agent never asked: the task prompt alone, nothing to train (it keeps the group whole)
            ids = self.renderer.encode(self.renderer.render([{"role": "user", "content": task.prompt}]))
            traj.input_ids, traj.model_token, traj.infer_logprobs = ids, [0] * len(ids), [0.0] * len(ids)
            traj.prompt_length = len(ids)
        turns = stream.turns
        traj.step_scores = [0.0] * max(0, turns - 1) + [reward]
        traj.stop_reason = stop
        traj.terminated = stop == "agent_exit"
        traj.truncated = not traj.terminated
        traj.metrics = {
            "success": reward,
            "num_actions": float(turns),
            "terminated": float(traj.terminated),
            "agent_timeout": float(stop == "agent_timeout"),
            "agent_error": float(traj.agent_exit_code not in (0, None)),
            "prefix_divergence": float(stream.divergences),
            "prompt_ids_reused": float(stream.reused_ids),
            "trained_turn_frac": len(traj.trained_turns) / turns if turns else 0.0,
        }
