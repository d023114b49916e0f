"""Agent-native episodes: the shipped tasks and config (no admin), then against a real rock-admin: rock-sdk's
bash agent runs in sandboxes, its intercepted requests are answered by the policy, a GRPO step trains on
the trajectories, and a replay check compares what each agent request carried with what was trained."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from roll.agentic.agent_native import AgentNativeEnvManager, AgentTrajectory
from roll.agentic.chat_tokens import ChatRenderer
from roll.agentic.env_manager import ChatFormatter, EnvFailure, EnvSlot
from roll.agentic.pipeline import AgenticPipeline, manager_class
from roll.agentic.tasks import SHIPPED, load_tasks
from roll.agentic.tracking import read_jsonl
from roll.config import ConfigError, load_and_validate
from roll.config.schema import AgentNativeConfig, CustomEnv
from roll.models.tiny import build_byte_tokenizer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NAME = "agentic_agent_native"


def _bash(script: str, cwd: Path) -> int:
    env = {**os.environ, "PYTHON": "python3"}
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, timeout=30
    ).returncode


# ----------------------------------------------------------------------------- tasks and config


@pytest.mark.parametrize("task", load_tasks(), ids=lambda t: t.name)
def test_each_shipped_task_fails_after_setup_and_passes_with_its_solution(task, tmp_path):
    assert _bash(task.setup, tmp_path) == 0
    assert _bash(task.verify, tmp_path) != 0  # the task is not solved by its setup
    assert _bash(task.solution, tmp_path) == 0
    assert _bash(task.verify, tmp_path) == 0


def test_task_files_are_checked_and_errors_name_the_key(tmp_path):
    assert len(load_tasks()) >= 3 and SHIPPED.is_file()
    assert [t.name for t in load_tasks(names=["write_file", "fix_failing_test"])] == [
        "write_file",
        "fix_failing_test",
    ]
    with pytest.raises(ValueError, match=r"agent.tasks: \['nope'\] not in terminal.json"):
        load_tasks(names=["nope"])
    own = tmp_path / "tasks.yaml"
    own.write_text("- {name: t, prompt: p, setup: 'true', verify: 'true'}\n")
    assert load_tasks(own)[0].verify == "true"
    own.write_text("- {name: t, prompt: p, setup: 'true', verfy: 'true'}\n")
    with pytest.raises(ValueError, match="unknown key 'verfy'; verify must be a non-empty string"):
        load_tasks(own)
    with pytest.raises(FileNotFoundError, match=r"agent\.task_file"):
        load_tasks(tmp_path / "missing.json")


def test_example_selects_the_agent_native_manager_and_bad_keys_are_named():
    cfg, _, _ = load_and_validate(EXAMPLES / "tiny-cpu", NAME, [], check_environment=False)
    assert manager_class(cfg, cfg.train_env_manager) is AgentNativeEnvManager
    agent = cfg.custom_envs["Terminal"].agent
    assert isinstance(agent, AgentNativeConfig) and agent.max_turns == 4
    with pytest.raises(ConfigError) as info:
        load_and_validate(
            EXAMPLES / "tiny-cpu",
            NAME,
            [
                "custom_envs.Terminal.agent.max_turns=0",
                "custom_envs.Terminal.agent.command='run {agent_file}'",
                "custom_envs.Terminal.agent.base_url=ftp://x",
                "custom_envs.Terminal.agent.tasks=[nope]",
                "+custom_envs.Local={env_type: roll:LetterEcho-v0}",
                "train_env_manager.tags=[Terminal,Local]",
                "train_env_manager.num_groups_partition=[2,1]",
            ],
            check_environment=False,
        )
    text = str(info.value)
    for words in (
        "custom_envs.Terminal.agent.max_turns: must be > 0",
        "custom_envs.Terminal.agent.command: unknown placeholder {agent_file}",
        "custom_envs.Terminal.agent.base_url:",
        "custom_envs.Terminal.agent.tasks: ['nope'] not in terminal.json",
        "train_env_manager.tags: mixes agent_native tags",
    ):
        assert words in text, text
    with pytest.raises(ConfigError, match=r"custom_envs\.Terminal\.agent\.maxturns"):
        load_and_validate(EXAMPLES / "tiny-cpu", NAME, ["+custom_envs.Terminal.agent.maxturns=2"])


# ----------------------------------------------------------------------------- against a real admin


@pytest.fixture(scope="module")
def admin(tmp_path_factory):
    if not os.environ.get("CI"):
        pytest.importorskip(
            "rock_admin", reason="needs rock-admin (pip install roll-core[rock] / rock-admin)"
        )
    from rock_admin.testing import running_admin

    with running_admin(tmp_path_factory.mktemp("rock-admin")) as running:
        yield running


def _kill_sandbox(admin, sandbox_id: str) -> None:
    """kill -9 the sandbox's init, as a crashed host would."""
    os.kill(admin.sandbox_pid(sandbox_id), 9)


def _agent_view(renderer: ChatRenderer, ids: list[int], mask: list[int]) -> str:
    """Token ids as text the way the agent got them: the model's runs without special tokens (an agent gets
    only text; the ids stay the model's own), its end token as the template writes it back."""
    out, start = [], 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or mask[i] != mask[start]:
            run = ids[start:i]
            if mask[start]:
                out.append(renderer.decode(run) + (renderer.eos_text if run[-1] == renderer.eos_id else ""))
            else:
                out.append(renderer.tokenizer.decode(run))
            start = i
    return "".join(out)


def _replay_check(traj: AgentTrajectory, renderer: ChatRenderer) -> None:
    """What the agent sent and saw matches what is trained: the rendering of each request's messages is the
    trained prompt, each answer is the next request's assistant message, the mask covers exactly the answer."""
    assert len(traj.requests) == len(traj.texts) == int(traj.metrics["num_actions"])
    for i, (request, (prompt_text, answer)) in enumerate(zip(traj.requests, traj.texts, strict=True)):
        assert renderer.render(request["messages"]) == prompt_text
        if i + 1 < len(traj.requests):
            assert {"role": "assistant", "content": answer} in traj.requests[i + 1]["messages"]
    assert traj.trained_turns, "no turn was trained"
    ends = [*traj.prompt_ends, len(traj.input_ids)]
    for k, turn in enumerate(traj.trained_turns):
        # the ids before this turn's generation, as the agent sees them, are the rendering of its request
        assert (
            _agent_view(renderer, traj.input_ids[: ends[k]], traj.model_token[: ends[k]])
            == traj.texts[turn][0]
        )
        span = range(ends[k], ends[k + 1])
        model_ids = [traj.input_ids[j] for j in span if traj.model_token[j]]
        assert renderer.decode(model_ids) == traj.texts[turn][1]
        assert all(traj.model_token[j] == 0 for j in range(ends[k] - 1, ends[k]))
    assert sum(traj.model_token[: traj.prompt_length]) == 0
    reported = json.loads(traj.agent_output.strip().splitlines()[-1])  # the agent's own count of its turns
    assert reported["turns"] == len(traj.requests)
    assert traj.episode_score == (1.0 if traj.verifier_exit_code == 0 else 0.0)


def test_grpo_step_with_agents_in_sandboxes_and_replay_check(admin, tmp_path, tiny_model_dir):
    """2 tasks x group 2, the tiny policy answers every intercepted turn, one GRPO step trains on them."""
    cfg, _, _ = load_and_validate(
        EXAMPLES / "tiny-cpu",
        NAME,
        [
            f"output_dir={tmp_path}",
            f"pretrain={tiny_model_dir}",
            "max_steps=1",
            "rollout_batch_size=4",
            "actor_train.training_args.per_device_train_batch_size=4",
            "train_env_manager.num_env_groups=2",
            "train_env_manager.num_groups_partition=[2]",
            "val_batch_size=1",
            "val_env_manager.num_env_groups=1",
            "val_env_manager.num_groups_partition=[1]",
            "custom_envs.Terminal.max_tokens_per_step=12",
            "custom_envs.Terminal.agent.max_turns=2",
            "custom_envs.Terminal.agent.tasks=[write_file,fix_shell_script]",
            f"custom_envs.Terminal.agent.base_url={admin.url}",
            "custom_envs.Terminal.agent.memory=1g",
        ],
    )
    pipeline = AgenticPipeline(cfg, stdout=False)
    seen: list[AgentTrajectory] = []
    scheduler = pipeline.schedulers["train"]
    get_batch = scheduler.get_batch

    def recording(*args, **kwargs):
        trajs, metrics = get_batch(*args, **kwargs)
        seen.extend(trajs)
        return trajs, metrics

    scheduler.get_batch = recording
    try:
        t0 = time.monotonic()
        pipeline.run()
        elapsed = time.monotonic() - t0
        sandboxes = {s.env.sandbox_id for s in scheduler.slots}
    finally:
        pipeline.close()
    rows = read_jsonl(Path(cfg.logging_dir) / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0]
    row = rows[0]
    assert "actor/pg_loss" in row and "val/score/mean" in row
    assert row["env/Terminal/num_actions"] >= 1
    assert row["env/Terminal/prefix_divergence"] == 0  # the bash agent appends to its history
    assert len(seen) == 4 and len(sandboxes) == 4
    renderer = ChatRenderer(pipeline.tokenizer)
    for traj in seen:
        assert traj.task in ("write_file", "fix_shell_script") and traj.response_length > 0
        _replay_check(traj, renderer)
    # the agent got no command from the untrained policy: it reminded it, so turn 2 extended turn 1
    multi = [t for t in seen if len(t.requests) == 2]
    assert multi and all(t.metrics["prompt_ids_reused"] > 0 for t in multi)
    print(f"agent-native GRPO step (val + train, 5 episodes): {elapsed:.1f} s")


@dataclass
class _Out:
    token_ids: list[int]
    log_probs: list[float]


class _Scripted:
    """A stand-in policy that answers with a task's known solution, then DONE (exercises reward 1.0)."""

    def __init__(self, renderer: ChatRenderer, replies: list[str]) -> None:
        self.renderer, self.replies = renderer, replies
        self.before_call = None

    def __call__(self, prompts, budgets):
        if self.before_call is not None:
            self.before_call()
        out = []
        for prompt in prompts:  # the reply by turn: assistant turns the prompt already holds
            turn = self.renderer.tokenizer.decode(prompt).count("<|im_start|>assistant") - 1
            ids = [
                *self.renderer.encode(self.replies[min(turn, len(self.replies) - 1)]),
                self.renderer.eos_id,
            ]
            out.append(_Out(ids, [-0.1] * len(ids)))
        return out


def test_sandbox_reused_across_episodes_rewarded_by_the_verifier_and_replaced_when_killed(admin):
    tokenizer = build_byte_tokenizer()
    renderer = ChatRenderer(tokenizer)
    task = load_tasks(names=["write_file"])[0]
    policy = _Scripted(renderer, [f"```bash\n{task.solution}\n```", "DONE"])
    manager = AgentNativeEnvManager(ChatFormatter(tokenizer), 4096, policy, 64, max_workers=2)
    agent = AgentNativeConfig(tasks=["write_file"], max_turns=3, base_url=admin.url, memory="1g")
    slot = EnvSlot(
        0, 0, "Terminal", CustomEnv(env_manager_cls="agent_native", max_tokens_per_step=64, agent=agent)
    )
    try:
        first = manager.run_episodes([slot], [0], [("g", "t0", 0)])[0]
        assert isinstance(first, AgentTrajectory), first
        sandbox_id = slot.env.sandbox_id
        second = manager.run_episodes([slot], [1], [("g", "t1", 1)])[0]
        assert isinstance(second, AgentTrajectory), second
        assert slot.env.sandbox_id == sandbox_id  # the same sandbox: only the agent restarted
        for traj in (first, second):
            assert traj.verifier_exit_code == 0 and traj.episode_score == 1.0
            assert traj.stop_reason == "agent_exit" and traj.agent_exit_code == 0
            assert len(traj.requests) == 2 and traj.metrics["prompt_ids_reused"] > 0
            assert json.loads(traj.agent_output.strip().splitlines()[-1])["stopped"] == "done"
            _replay_check(traj, renderer)
        # a sandbox killed mid-episode fails that episode, and the slot gets a new sandbox for the next
        policy.before_call = lambda: (_kill_sandbox(admin, sandbox_id), setattr(policy, "before_call", None))
        failed = manager.run_episodes([slot], [2], [("g", "t2", 2)])[0]
        assert isinstance(failed, EnvFailure) and manager.replacements == 1 and slot.env is None
        third = manager.run_episodes([slot], [3], [("g", "t3", 3)])[0]
        assert isinstance(third, AgentTrajectory) and third.episode_score == 1.0
        assert slot.env.sandbox_id != sandbox_id and third.metrics["sandbox_replaced"] == 1.0
        # an agent that never asks is stopped at agent_timeout_s; the verifier still decides the reward
        slot.custom.agent = AgentNativeConfig(
            tasks=["write_file"], base_url=admin.url, command="sleep 300", agent_timeout_s=2, poll_timeout_s=1
        )
        t0 = time.monotonic()
        idle = manager.run_episodes([slot], [4], [("g", "t4", 4)])[0]
        assert isinstance(idle, AgentTrajectory) and time.monotonic() - t0 < 30
        assert idle.stop_reason == "agent_timeout" and idle.truncated and idle.metrics["agent_timeout"] == 1.0
        assert idle.response_length == 0 and idle.episode_score == 0.0 and idle.verifier_exit_code != 0
    finally:
        if slot.env is not None:
            slot.env.close()
        manager.close()
