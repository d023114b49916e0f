"""Trajectory env manager: multi-turn episodes, token-in-token-out, one sample per trajectory.

The episode's token ids are the prompt ids we tokenised plus the ids the model produced, concatenated turn
by turn; history is never re-tokenised. `response_mask` marks exactly the model's tokens. Envs of a batch
run in lockstep turns so that one batched generation call serves every env that is still playing; env
calls run in a thread pool under deadlines that follow measured latency; a failed episode is retried
(on the same env when it is healthy) or its group dropped.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from roll.agentic.env_calls import EnvCaller, EnvCallTimeout
from roll.config.schema import CustomEnv
from roll.errors import EnvUnavailableError

# Aggregation of env info metrics over a trajectory (ROLL's metrics_agg_mode defaults).
DEFAULT_AGG = {"success": "last"}


class EnvFailure(RuntimeError):
    """An env raised or timed out in reset/step."""


def make_env(custom: CustomEnv):
    """A GEM env for a custom_envs entry: local gem_envs by id, or ROCK-hosted when `rock:` is set."""
    if custom.rock is not None:
        try:
            import rock  # type: ignore[import-not-found]
        except ImportError as exc:
            raise ImportError("ROCK-hosted envs need the rock-sdk package: `pip install rock-sdk`") from exc
        if not hasattr(rock, "make"):
            raise NotImplementedError(
                "the installed rock package has no rock.make(); ROCK-hosted envs need rock-sdk>=0.1"
            )
        return rock.make(custom.env_type, **custom.rock, **custom.env_config)
    import gem_envs
    import roll.envs  # noqa: F401  (registers roll:LetterEcho-v0)

    return gem_envs.make(custom.env_type, **custom.env_config)


class ChatFormatter:
    """Per-turn prompt ids from messages via the tokenizer's chat template, with ROLL's conventions."""

    def __init__(self, tokenizer, skip_mock_system_prompt: bool = False) -> None:
        self.tokenizer = tokenizer
        self.skip_mock = skip_mock_system_prompt
        self.eos_id = tokenizer.eos_token_id
        # text the template puts after an assistant message's end token (ChatML: "\n")
        probe = "\u2063PROBE\u2063"
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": "u"}, {"role": "assistant", "content": probe}], tokenize=False
        )
        after = rendered.split(probe, 1)[1] if probe in rendered else ""
        eos = tokenizer.eos_token or ""
        self.turn_suffix_ids = self.encode(after.split(eos, 1)[1]) if eos and eos in after else []
        self._mock_prefix = tokenizer.apply_chat_template([{"role": "system", "content": ""}], tokenize=False)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, messages: list[dict[str, str]], first_turn: bool) -> list[int]:
        has_system = any(m["role"] == "system" for m in messages)
        if has_system or self.skip_mock:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            # template [empty system] + messages and strip that prefix, so templates that insert a
            # default system prompt do not inject it on every turn
            full = self.tokenizer.apply_chat_template(
                [{"role": "system", "content": ""}, *messages], tokenize=False, add_generation_prompt=True
            )
            text = full[len(self._mock_prefix) :] if full.startswith(self._mock_prefix) else full
        return self.encode(text)

    def continuation_prefix(self, last_response: list[int]) -> list[int]:
        """Ids between the previous response and the next prompt: the end token if the model did not emit
        it (length cut), then what the template writes after it. Never doubled."""
        prefix = [] if last_response and last_response[-1] == self.eos_id else [self.eos_id]
        return prefix + self.turn_suffix_ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


@dataclass
class EnvSlot:
    """One env instance in the rollout pool."""

    env_id: int
    group_id: int
    tag: str
    custom: CustomEnv
    env: Any = None
    replaced: int = 0  # envs discarded after a failure since this slot's last finished episode


@dataclass
class Trajectory:
    """One finished episode as token ids and per-token flags (sequence positions, not shifted)."""

    env_id: int
    group_id: int
    tag: str
    traj_group_id: str
    traj_id: str
    episode_id: int
    seed: int
    input_ids: list[int] = field(default_factory=list)
    model_token: list[int] = field(default_factory=list)  # 1 where the model produced the token
    infer_logprobs: list[float] = field(default_factory=list)
    prompt_length: int = 0
    step_scores: list[float] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    terminated: bool = False
    truncated: bool = False
    stop_reason: str = ""
    texts: list[tuple[str, str]] = field(default_factory=list)  # (prompt text, response text) per turn
    policy_version: int = 0  # train steps behind the weights that generated it (set by the scheduler)

    @property
    def episode_score(self) -> float:
        return float(sum(self.step_scores))

    @property
    def response_length(self) -> int:
        return int(sum(self.model_token))


@dataclass
class _Run:
    slot: EnvSlot
    traj: Trajectory
    observation: str = ""
    instruction: str = ""
    suffix: str = ""  # the env's `info["suffix"]` (ROLL's task suffix), for templates that use {suffix}
    turn: int = 0
    done: bool = False
    last_response: list[int] = field(default_factory=list)
    info_metrics: list[dict] = field(default_factory=list)


GenerateFn = Callable[[list[list[int]], list[int]], list[Any]]


class TrajEnvManager:
    """Plays episodes for a list of env slots in lockstep turns through one `generate` callable.

    Env calls run in a pool under adaptive deadlines (`roll.agentic.env_calls`). A failed env is kept when
    it answers its health probe (`env.healthy()`: a sandbox that is alive is reused, not replaced) and
    replaced otherwise; `replacements` counts the replaced ones. `progress(done, text)` (optional) hears
    `done` finished episodes (text "") or, with done 0, what the rollout waits for ("" once it is over)."""

    def __init__(
        self,
        formatter: ChatFormatter,
        sequence_length: int,
        generate: GenerateFn,
        max_new_tokens: int,
        env_timeout_s: float = 600.0,
        max_workers: int = 8,
    ) -> None:
        self.formatter = formatter
        self.sequence_length = sequence_length
        self.generate = generate
        self.max_new_tokens = max_new_tokens
        self.env_timeout_s = env_timeout_s
        self.pool = cf.ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="roll-env")
        self.calls = EnvCaller(self.pool, env_timeout_s)
        self.replacements = 0
        self.progress: Callable[[int, str], None] | None = None

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _report(self, done: int, text: str) -> None:
        if self.progress is not None:
            self.progress(done, text)

    def _discard(self, slot: EnvSlot) -> None:
        """Drop a failed env so the slot makes a fresh one (a new sandbox for ROCK-backed envs); the old
        one is closed in the background, since a dead sandbox or admin may be slow to answer."""
        env, slot.env = slot.env, None
        self.replacements += 1
        slot.replaced += 1
        if env is not None and callable(close := getattr(env, "close", None)):
            self.pool.submit(close)

    @staticmethod
    def _healthy(slot: EnvSlot) -> bool:
        """The env's own health probe (`healthy()`); envs without one count as broken after a failure."""
        probe = getattr(slot.env, "healthy", None)
        if not callable(probe):
            return False
        try:
            return bool(probe())
        except Exception:  # a probe that raises is a failed probe
            return False

    def _failure(self, slot: EnvSlot, what: str, exc: BaseException) -> EnvFailure:
        """The EnvFailure of a failed call; the env is replaced unless it is healthy and not stuck in the
        call (a timed-out call still runs in the pool and holds the env)."""
        if isinstance(exc, EnvCallTimeout) or not self._healthy(slot):
            self._discard(slot)
            return EnvFailure(f"{slot.tag} {what} failed: {_reason(exc)}")
        return EnvFailure(f"{slot.tag} {what} failed (env kept, it answers its health probe): {_reason(exc)}")

    @staticmethod
    def _reset(slot: EnvSlot, seed: int):
        """Make the slot's env on first use, then reset it (in the pool: sandbox-backed envs start here)."""
        if slot.env is None:
            slot.env = make_env(slot.custom)
        return slot.env.reset(seed)

    def _user_message(self, run: _Run) -> str:
        c = run.slot.custom
        template = c.agent_template or "{observation}"
        values = {
            "observation": run.observation,
            "turn_idx": run.turn + 1,
            "actions_left": c.max_steps - run.turn,
            "max_response_length": c.max_tokens_per_step,
            "suffix": run.suffix,
        }
        text = _render(template, values)
        if run.turn == 0 and run.instruction:
            text = run.instruction + "\n" + text
        return text

    def run_episodes(
        self, slots: list[EnvSlot], seeds: list[int], ids: list[tuple[str, str, int]]
    ) -> list[Trajectory | EnvFailure]:
        """One episode per slot (reset with its seed); returns a Trajectory or the EnvFailure per slot."""
        runs: list[_Run | EnvFailure] = []
        # all resets at once: a sandbox-backed env's first reset starts its sandbox, which takes a while
        resets = [
            self.calls.submit(slot, "reset" if slot.env is not None else "start", self._reset, slot, seed)
            for slot, seed in zip(slots, seeds, strict=True)
        ]
        outcomes = self.calls.gather(resets, self._healthy, lambda text: self._report(0, text))
        for slot, seed, (tgid, tid, episode_id), out in zip(slots, seeds, ids, outcomes, strict=True):
            traj = Trajectory(slot.env_id, slot.group_id, slot.tag, tgid, tid, episode_id, seed)
            if isinstance(out, EnvUnavailableError):
                raise out  # the env already retried for its whole window: retrying the episode cannot help
            if isinstance(out, BaseException):
                runs.append(self._failure(slot, "reset", out))
                continue
            obs, info = out
            instruction = str(info.get("env_instruction", "") or "")
            runs.append(_Run(slot, traj, str(obs), instruction, str(info.get("suffix", "") or "")))
        while True:
            active = [r for r in runs if isinstance(r, _Run) and not r.done]
            if not active:
                break
            prompts, budgets, chosen = [], [], []
            for r in active:
                c = r.slot.custom
                msgs = []
                if r.turn == 0 and c.agent_system_template:
                    msgs.append({"role": "system", "content": c.agent_system_template})
                user = self._user_message(r)
                msgs.append({"role": "user", "content": user})
                new_ids = self.formatter.prompt_ids(msgs, first_turn=r.turn == 0)
                if r.turn > 0:
                    new_ids = self.formatter.continuation_prefix(r.last_response) + new_ids
                current = len(r.traj.input_ids) + len(new_ids)
                budget = min(c.max_tokens_per_step, self.max_new_tokens, self.sequence_length - current)
                if budget <= 0:  # context exhausted: the episode ends before this turn
                    r.done, r.traj.truncated, r.traj.stop_reason = True, True, "max_length"
                    self._report(1, "")
                    continue
                r.traj.input_ids += new_ids
                r.traj.model_token += [0] * len(new_ids)
                r.traj.infer_logprobs += [0.0] * len(new_ids)
                if r.turn == 0:
                    r.traj.prompt_length = len(r.traj.input_ids)
                prompts.append(list(r.traj.input_ids))
                budgets.append(budget)
                chosen.append((r, user))
            if not chosen:
                continue
            self._report(0, f"waiting for generation (turn {active[0].turn + 1}, {len(prompts)} envs)")
            outputs = self.generate(prompts, budgets)
            step_jobs = []
            for (r, user), out in zip(chosen, outputs, strict=True):
                ids = list(out.token_ids)
                r.traj.input_ids += ids
                r.traj.model_token += [1] * len(ids)
                r.traj.infer_logprobs += list(out.log_probs)
                r.last_response = ids
                text = self.formatter.decode(ids)
                r.traj.texts.append((user, text))
                step_jobs.append((r, text))
            steps = [self.calls.submit(r.slot, "step", r.slot.env.step, text) for r, text in step_jobs]
            outcomes = self.calls.gather(steps, self._healthy, lambda text: self._report(0, text))
            for (r, _), out in zip(step_jobs, outcomes, strict=True):
                if isinstance(out, EnvUnavailableError):
                    raise out
                if isinstance(out, BaseException):
                    runs[runs.index(r)] = self._failure(r.slot, "step", out)
                    continue
                obs, reward, terminated, truncated, info = out
                r.turn += 1
                r.traj.step_scores.append(float(reward))
                r.info_metrics.append(dict(info.get("metrics", {}) or {}))
                r.observation = str(obs)
                r.suffix = str(info.get("suffix", "") or "")
                if terminated or truncated:
                    r.done, r.traj.terminated, r.traj.truncated = True, bool(terminated), bool(truncated)
                    r.traj.stop_reason = "env"
                elif r.turn >= r.slot.custom.max_steps:
                    r.done, r.traj.terminated, r.traj.truncated = True, True, True
                    r.traj.stop_reason = "max_steps"
                elif len(r.traj.input_ids) >= self.sequence_length:
                    r.done, r.traj.truncated, r.traj.stop_reason = True, True, "max_length"
                if r.done:
                    self._report(1, "")
        self._report(0, "")  # the rollout waits for nothing now
        results: list[Trajectory | EnvFailure] = []
        for r in runs:
            if isinstance(r, EnvFailure):
                results.append(r)
                continue
            r.traj.metrics = _aggregate(r.info_metrics, r.slot.custom.metrics_agg_mode or {})
            r.traj.metrics["num_actions"] = float(r.turn)
            # 1 when the episode reached a terminal state (the env ended it, or max_steps did), 0 when
            # it was cut by the context length: env/<tag>/terminated is the fraction that finished
            r.traj.metrics["terminated"] = float(r.traj.terminated)
            if hasattr(r.slot.env, "sandbox_id"):  # sandbox-backed: env/<tag>/sandbox_replaced
                r.traj.metrics["sandbox_replaced"] = float(r.slot.replaced)
                r.slot.replaced = 0
            results.append(r.traj)
        return results


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, EnvCallTimeout) else repr(exc)


def _render(template: str, values: dict[str, Any]) -> str:
    """str.format with only the placeholders the template has; other braces are left as written."""
    import string

    out = []
    for literal, name, spec, conv in string.Formatter().parse(template):
        out.append(literal)
        if name is None:
            continue
        if name in values:
            out.append(format(values[name], spec or ""))
        else:
            out.append("{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}")
    return "".join(out)


def _aggregate(per_step: list[dict], modes: dict) -> dict[str, float]:
    keys: list[str] = []
    for m in per_step:
        keys += [k for k in m if k not in keys]
    out: dict[str, float] = {}
    for k in keys:
        values = [float(m[k]) for m in per_step if k in m and isinstance(m[k], (int, float, bool))]
        if not values:
            continue
        mode = modes.get(k, DEFAULT_AGG.get(k, "mean"))
        out[k] = {"last": values[-1], "sum": sum(values), "max": max(values), "min": min(values)}.get(
            mode, sum(values) / len(values)
        )
    return out
