"""`sandbox.agent` and `sandbox.agent.model_service` against a real `rock-admin serve` and a real sandbox: the
shipped agents run inside it, their LLM calls are parked in the sandbox, and the test plays the trainer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import TypeVar

import pytest

testing = pytest.importorskip("rock_admin.testing", reason="the SDK tests need rock-admin (test extra)")

from rock.actions import ReadFileRequest  # noqa: E402
from rock.sdk.sandbox.agent import RockAgentConfig  # noqa: E402
from rock.sdk.sandbox.client import Sandbox  # noqa: E402
from rock.sdk.sandbox.model_service import SESSION_END, ModelServiceConfig, chat_completion  # noqa: E402

T = TypeVar("T")
KEY, OTHER_KEY = "ms-key", "ms-other-key"
TASK = "Write the word ready into /tmp/out.txt"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testing.SandboxRef]:
    with (
        testing.running_admin(
            tmp_path_factory.mktemp("model-service"), api_keys=f"{KEY},{OTHER_KEY}"
        ) as admin,
        admin.client(headers={"X-API-Key": KEY}) as http,
    ):
        yield testing.SandboxRef(admin.url, testing.start_sandbox(http), KEY)


async def play(sb: Sandbox, replies: list[str]) -> list[dict]:
    """The trainer's loop: answer each intercepted request with the next scripted reply; the requests seen."""
    ms = sb.agent.model_service
    seen, turn = [], await ms.next_turn(timeout=60)
    while not turn.session_end:
        assert not turn.timed_out, "the agent sent nothing for 60 s"
        seen.append(turn.request)
        turn = await ms.answer_and_next(turn.index, chat_completion(replies[len(seen) - 1]), timeout=60)
    assert turn.exit_code == 0
    return seen


AGENTS = {
    "python": "{python} -m rock.agents.bash_agent --task-file /tmp/task.txt --max-turns 4",
    "shell": "PYTHON={python} bash {script} /tmp/task.txt 4",
}


@pytest.mark.parametrize("kind", sorted(AGENTS))
def test_a_shipped_agent_runs_in_the_sandbox_and_the_trainer_answers_its_turns(
    env: testing.SandboxRef, kind: str
) -> None:
    async def go(sb: Sandbox) -> tuple[list[dict], str, int | None]:
        status = await sb.agent.model_service.start(ModelServiceConfig(request_timeout=60))
        await sb.write_file_by_path(TASK, "/tmp/task.txt")
        import rock.agents

        script = f"{rock.agents.__path__[0]}/bash_agent.sh"
        run = await sb.agent.start(AGENTS[kind].format(python=status.python, script=script))
        seen = await play(
            sb, ["I will write it.\n```bash\necho ready > /tmp/out.txt\n```", "Looks good. DONE"]
        )
        info = await sb.agent.wait(run, timeout=30)
        out = await sb.read_file(ReadFileRequest(path="/tmp/out.txt"))
        await sb.agent.model_service.stop()
        return seen, out.content, info.exit_code

    seen, written, exit_code = env.call(go)
    assert written.strip() == "ready"  # the command the "model" chose ran in the sandbox
    assert exit_code == 0
    assert len(seen) == 2
    assert seen[0]["messages"][-1] == {"role": "user", "content": TASK}
    # the second request carries the first answer and what running it printed: the whole trajectory
    assert seen[1]["messages"][2]["content"].startswith("I will write it.")
    assert seen[1]["messages"][3]["content"].startswith("exit code 0")


@pytest.mark.parametrize("channel", ["direct", "file"])
def test_anti_call_llm_keeps_upstreams_shape(env: testing.SandboxRef, channel: str) -> None:
    async def go(sb: Sandbox) -> list[str]:
        ms = sb.agent.model_service
        status = await ms.start(ModelServiceConfig(request_timeout=60))
        await sb.write_file_by_path(TASK, "/tmp/task.txt")
        await sb.agent.start(
            f"{status.python} -m rock.agents.bash_agent --task-file /tmp/task.txt --max-turns 2"
        )
        got = [await ms.anti_call_llm(0, channel=channel, call_timeout=60)]
        got.append(await ms.anti_call_llm(1, json.dumps(chat_completion("thinking")), 60, channel=channel))
        got.append(await ms.anti_call_llm(2, chat_completion("still thinking"), 60, channel=channel))
        await ms.stop()
        return got

    first, second, end = env.call(go)
    assert json.loads(first)["messages"][1]["content"] == TASK
    assert json.loads(second)["messages"][-1]["content"].startswith("No command found")
    assert end == SESSION_END  # two turns used up: the agent exits, the session ends


def test_install_and_run_as_upstream(env: testing.SandboxRef) -> None:
    """`install(RockAgentConfig)` + `run(prompt)` blocks until the agent ends, while a trainer answers."""

    async def go(sb: Sandbox) -> tuple[str, int | None]:
        python = (await sb.agent.model_service.start()).python
        await sb.agent.install(
            RockAgentConfig(run_cmd=f"{python} -m rock.agents.bash_agent --task ${{prompt}}")
        )
        ran = asyncio.create_task(sb.agent.run("say DONE"))
        await play(sb, ["DONE"])
        obs = await ran
        await sb.agent.model_service.stop()
        return obs.output, obs.exit_code

    output, exit_code = env.call(go)
    assert exit_code == 0 and '"stopped": "done"' in output


def test_another_tenant_cannot_reach_the_model_service(env: testing.SandboxRef) -> None:
    async def go(sb: Sandbox) -> str:
        try:
            await sb.agent.model_service.next_turn(timeout=1)
        except Exception as exc:  # the admin answers as for an unknown id
            return str(exc)
        return "answered"

    assert "not found" in env.call(go, api_key=OTHER_KEY).lower()
