"""Bash sessions over HTTP against a real rocklet: exact outputs, exit codes, check modes, expect, REPLs,
interrupt and timeouts."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from rocklet.testing import error_of, run, running_rocklet


@pytest.mark.parametrize(
    ("command", "output", "exit_code"),
    [
        ("echo 'hello world'", "hello world\n", 0),
        ("printf '  x'", "  x", 0),
        ("echo ''", "\n", 0),
        ("# a comment alone", "", 0),
        ("\n\necho a\n\n# note\necho b\n\n", "a\nb\n", 0),
        ("false && true", "", 1),
        ("doesntexist_cmd_xyz 2>/dev/null", "", 127),
        ("cat <<'EOF'\nline 1\n  $HOME stays\nEOF", "line 1\n  $HOME stays\n", 0),
        ("echo 'multi\nline quote'", "multi\nline quote\n", 0),
        ("printf '\\033[31mred\\033[0m\\n'", "red\n", 0),
        ("echo $TERM", "dumb\n", 0),
        ("echo é✓", "é✓\n", 0),
        ("if true; then\n  echo yes\nfi", "yes\n", 0),
        ("for i in 1 2 3; do echo $i; done", "1\n2\n3\n", 0),
        ("(exit 7)", "", 7),
    ],
)
def test_exact_outputs(http: httpx.Client, session: str, command: str, output: str, exit_code: int) -> None:
    r = run(http, session, command, check="silent")
    assert r.status_code == 200, r.text
    assert r.json()["output"] == output
    assert r.json()["exit_code"] == exit_code


def test_observation_shape(http: httpx.Client, session: str) -> None:
    body = run(http, session, "echo hi").json()
    assert body == {
        "session_type": "bash",
        "output": "hi\n",
        "exit_code": 0,
        "failure_reason": "",
        "expect_string": "",
    }


def test_state_persists_in_session_and_sessions_are_isolated(http: httpx.Client, session: str) -> None:
    assert run(http, session, "x=42; declare -a arr=(a b); cd /tmp").status_code == 200
    assert run(http, session, "echo $x ${arr[1]} $PWD").json()["output"] == "42 b /tmp\n"
    other = "isolated-other"
    http.post("/create_session", json={"session": other})
    try:
        assert run(http, other, 'echo "[$x]"').json()["output"] == "[]\n"
    finally:
        http.post("/close_session", json={"session": other})


def test_background_job_returns_at_once(http: httpx.Client, session: str, tmp_path) -> None:
    done = tmp_path / "job-finished"
    r = run(http, session, f"(sleep 10; touch {done}) &")
    assert r.status_code == 200
    assert r.json()["exit_code"] == 0
    assert not done.exists()  # the reply came while the job still ran: it did not wait for it
    run(http, session, "kill %1 2>/dev/null; wait 2>/dev/null", check="ignore")


def test_check_modes(http: httpx.Client, session: str) -> None:
    err = error_of(run(http, session, "echo out; false", error_msg="it failed"))
    assert err["class_path"] == "rock.exceptions.NonZeroExitCodeError"
    assert err["message"].startswith("it failed: ")
    assert err["extra_info"]["exit_code"] == 1
    assert run(http, session, "false", check="silent").json()["exit_code"] == 1
    assert run(http, session, "false", check="ignore").status_code == 200


def test_syntax_error_is_reported_not_hung(http: httpx.Client, session: str) -> None:
    err = error_of(run(http, session, "(a"))
    assert err["class_path"] == "rock.exceptions.BashIncorrectSyntaxError"
    assert "bash_stderr" in err["extra_info"]
    assert "syntax error" in err["extra_info"]["bash_stderr"]
    # Nothing of it ran, and the session still works.
    assert run(http, session, "echo fine").json()["output"] == "fine\n"


def test_constructs_upstream_splitting_failed_on(http: httpx.Client, session: str) -> None:
    assert run(http, session, "A=(); echo ${#A[@]}").json()["output"] == "0\n"
    assert run(http, session, "env=1; [[ $env == $env ]] && echo same").json()["output"] == "same\n"


def test_long_command_goes_through(http: httpx.Client, session: str) -> None:
    lines = "\n".join(f"v{i}={i}" for i in range(400)) + "\necho $v399"
    assert len(lines) > 2000
    assert run(http, session, lines).json()["output"] == "399\n"


def test_binary_output(http: httpx.Client, session: str) -> None:
    r = run(http, session, "printf 'a\\xff\\xfeb\\n'")
    assert r.status_code == 200
    assert r.json()["output"] == "a\\xff\\xfeb\n"


def test_output_is_bounded(http: httpx.Client, session: str) -> None:
    # The test rocklet keeps 1 MiB per command; this prints 8 MB.
    r = run(http, session, "head -c 8000000 /dev/zero | tr '\\0' 'x'; echo; echo END")
    assert r.status_code == 200
    body = r.json()
    assert len(body["output"]) < 2_000_000
    assert body["output"].endswith("END\n")
    assert "bytes of output dropped" in body["output"]
    assert body["failure_reason"].startswith("output truncated")
    assert run(http, session, "echo after").json()["output"] == "after\n"


def test_expect_patterns_and_python_repl(http: httpx.Client, session: str) -> None:
    r = run(http, session, "python3 -q", is_interactive_command=True, expect=[">>> "], timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["expect_string"] == ">>> "
    r = run(http, session, "print(6 * 7)", is_interactive_command=True, expect=[">>> "], timeout=30)
    assert r.json()["output"] == "42"
    r = run(http, session, "quit()\n", is_interactive_quit=True, timeout=30)
    assert r.status_code == 200, r.text
    # Back in bash: commands are not echoed and exit codes are exact again.
    assert run(http, session, "echo back; false", check="silent").json() == {
        "session_type": "bash",
        "output": "back\n",
        "exit_code": 1,
        "failure_reason": "",
        "expect_string": "",
    }


def test_expect_on_normal_command(http: httpx.Client, session: str) -> None:
    r = run(http, session, "echo 'Password:'; read -r pw; echo got=$pw", expect=["Pass.ord:"], timeout=30)
    body = r.json()
    assert body["expect_string"] == "Pass.ord:"
    assert body["exit_code"] is None
    # The program still waits: answer it like a user would.
    body = run(http, session, "hunter2", timeout=30).json()
    assert "got=hunter2" in body["output"]
    assert run(http, session, "echo ok").json()["output"] == "ok\n"


def test_timeout_interrupts_and_session_survives(http: httpx.Client, session: str) -> None:
    run(http, session, "y=1")
    err = error_of(run(http, session, "echo start; sleep 100", timeout=0.5))
    assert err["class_path"] == "rock.exceptions.CommandTimeoutError"
    assert "CommandTimeoutError" in err["class_path"]
    assert "builtins.TimeoutError" in err["bases"]
    assert err["extra_info"]["output"].startswith("start")
    # Interrupted, not left running: the next command answers with the old state.
    assert run(http, session, "echo $y").json()["output"] == "1\n"


def test_timeout_escalates_to_kill_when_ctrl_c_is_ignored(http: httpx.Client, session: str) -> None:
    run(http, session, "z=5")
    err = error_of(run(http, session, "trap '' INT; sleep 100", timeout=0.3))
    assert "killed process group" in err["extra_info"]["stopped_by"]
    run(http, session, "trap - INT", check="ignore")
    assert run(http, session, "echo $z").json()["output"] == "5\n"


def _wait_until_exists(path: Path, timeout: float = 30.0) -> None:
    """The command marks that it runs by creating `path` (this rocklet shares the test's file system)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"the command did not start within {timeout:g} s"
        time.sleep(0.02)


def test_interrupt_while_command_runs(http: httpx.Client, session: str, tmp_path: Path) -> None:
    result: dict[str, httpx.Response] = {}
    started = tmp_path / "started"

    def long_command() -> None:
        result["r"] = run(http, session, f"touch {started}; sleep 100; echo never", check="silent")

    thread = threading.Thread(target=long_command)
    thread.start()
    _wait_until_exists(started)
    r = http.post("/run_in_session", json={"action_type": "bash_interrupt", "session": session})
    assert r.status_code == 200, r.text
    assert r.json()["exit_code"] == 0
    thread.join(30)
    assert result["r"].status_code == 200
    assert result["r"].json()["exit_code"] == 130
    assert "never" not in result["r"].json()["output"]
    assert run(http, session, "echo alive").json()["output"] == "alive\n"


def test_interrupt_escalation_kills_process_group(http: httpx.Client, session: str, tmp_path: Path) -> None:
    result: dict[str, httpx.Response] = {}
    started = tmp_path / "started"
    thread = threading.Thread(
        target=lambda: result.setdefault(
            "r", run(http, session, f"trap '' INT; touch {started}; sleep 100 | cat", check="silent")
        )
    )
    thread.start()
    _wait_until_exists(started)
    r = http.post(
        "/run_in_session",
        json={"action_type": "bash_interrupt", "session": session, "timeout": 0.2, "n_retry": 2},
    )
    assert r.status_code == 200, r.text
    assert "killed process group" in r.json()["failure_reason"]
    thread.join(30)
    assert result["r"].status_code == 200
    run(http, session, "trap - INT", check="ignore")
    assert run(http, session, "echo usable").json()["output"] == "usable\n"


def test_interrupt_idle_session(http: httpx.Client, session: str) -> None:
    r = http.post("/run_in_session", json={"action_type": "bash_interrupt", "session": session})
    assert r.status_code == 200
    assert run(http, session, "echo idle-ok").json()["output"] == "idle-ok\n"


def test_shell_stuck_in_builtin_is_restarted(http: httpx.Client, session: str) -> None:
    err = error_of(run(http, session, "trap '' INT; while :; do :; done", timeout=0.3))
    assert "restarted" in err["extra_info"]["stopped_by"]
    assert run(http, session, "echo reborn").json()["output"] == "reborn\n"


def test_exit_closes_session(http: httpx.Client) -> None:
    http.post("/create_session", json={"session": "exiting"})
    r = run(http, "exiting", "exit 3", check="silent")
    assert r.status_code == 200
    assert r.json()["exit_code"] == 3
    assert "exited" in r.json()["failure_reason"]
    # The name is free again.
    assert http.post("/create_session", json={"session": "exiting"}).status_code == 200
    http.post("/close_session", json={"session": "exiting"})


def test_session_errors(http: httpx.Client, session: str) -> None:
    err = error_of(http.post("/create_session", json={"session": session}))
    assert err["class_path"] == "rock.exceptions.SessionExistsError"
    err = error_of(run(http, "no-such-session", "echo"))
    assert err["class_path"] == "rock.exceptions.SessionDoesNotExistError"
    err = error_of(http.post("/close_session", json={"session": "no-such-session"}))
    assert err["class_path"] == "rock.exceptions.SessionDoesNotExistError"
    err = error_of(http.post("/run_in_session", json={"action_type": "bash_interrupt", "session": "nope"}))
    assert err["class_path"] == "rock.exceptions.SessionDoesNotExistError"


def test_create_session_options(http: httpx.Client, tmp_path) -> None:
    rc = tmp_path / "startup.sh"
    rc.write_text("export FROM_STARTUP=yes\necho hello-from-startup\n")
    r = http.post(
        "/create_session",
        json={
            "session": "opts",
            "startup_source": [str(rc)],
            "env": {"MY_VAR": "v1"},
            "sandbox_id": "sbx-1",
            "startup_timeout": 10,
        },
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"output": "hello-from-startup", "session_type": "bash"}
    try:
        assert run(http, "opts", "echo $FROM_STARTUP $MY_VAR").json()["output"] == "yes v1\n"
        # env_enable=False: the rocklet's own variables are not passed on.
        assert run(http, "opts", 'echo "[${ROCKLET_TEST_ONLY:-}]"').json()["output"] == "[]\n"
    finally:
        http.post("/close_session", json={"session": "opts"})
    # env_enable=True: the rocklet's whole environment is passed on.
    http.post("/create_session", json={"session": "inherit", "env_enable": True})
    try:
        assert run(http, "inherit", 'echo "[${ROCKLET_TEST_ONLY:-}]"').json()["output"] == "[set]\n"
    finally:
        http.post("/close_session", json={"session": "inherit"})


def test_concurrent_sessions(http: httpx.Client) -> None:
    names = [f"conc-{i}" for i in range(6)]
    for name in names:
        assert http.post("/create_session", json={"session": name}).status_code == 200
    results: dict[str, str] = {}

    def work(name: str) -> None:
        out = []
        for i in range(20):
            out.append(run(http, name, f"echo {name}-{i}").json()["output"])
        results[name] = "".join(out)

    threads = [threading.Thread(target=work, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for name in names:
        assert results[name] == "".join(f"{name}-{i}\n" for i in range(20))
        http.post("/close_session", json={"session": name})


def _in_flight(http: httpx.Client, session: str, command: str, marker, result: dict) -> threading.Thread:
    """Run `command` (no timeout) in a thread; return once the command has started (it touches `marker`)."""
    thread = threading.Thread(
        target=lambda: result.setdefault(
            "r", run(http, session, f"touch {marker}; {command}", check="silent")
        )
    )
    thread.start()
    deadline = time.monotonic() + 20
    while not marker.exists():
        assert time.monotonic() < deadline, "the long command never started"
        time.sleep(0.02)
    return thread


def test_busy_session_answers_the_next_command_at_once(
    rocklet, http: httpx.Client, session: str, tmp_path
) -> None:
    result: dict[str, httpx.Response] = {}
    thread = _in_flight(http, session, "sleep 100; echo never", tmp_path / "started", result)
    # A second command on the same session, with its own timeout, while the first (no timeout) runs: it must not
    # wait behind it (this client gives up after 15 s, so a hang fails the test instead of stalling it).
    with rocklet.client(timeout=15.0) as other:
        err = error_of(run(other, session, "echo hi", timeout=5))
    assert err["class_path"] == "rock.exceptions.SessionBusyError"
    assert "busy" in err["message"] and "sleep 100" in err["message"]
    assert "builtins.RuntimeError" in err["bases"]
    # The running command is untouched by the refused one; an interrupt still reaches it.
    r = http.post("/run_in_session", json={"action_type": "bash_interrupt", "session": session})
    assert r.status_code == 200, r.text
    # Right after the interrupt's reply the session takes the next command (no spurious "busy").
    assert run(http, session, "echo after").json()["output"] == "after\n"
    thread.join(30)
    assert result["r"].json()["exit_code"] == 130
    assert "never" not in result["r"].json()["output"]


def test_busy_session_can_be_closed(http: httpx.Client, tmp_path) -> None:
    name = "busy-close"
    assert http.post("/create_session", json={"session": name}).status_code == 200
    result: dict[str, httpx.Response] = {}
    thread = _in_flight(http, name, "sleep 100", tmp_path / "started", result)
    r = http.post("/close_session", json={"session": name})
    assert r.status_code == 200, r.text
    thread.join(30)
    assert not thread.is_alive()
    assert result["r"].status_code == 200
    assert "closed" in result["r"].json()["failure_reason"]
    assert http.post("/create_session", json={"session": name}).status_code == 200
    http.post("/close_session", json={"session": name})


def test_sessions_see_the_sandbox_start_env(tmp_path) -> None:
    """The env a sandbox was started with (`ROCKLET_SESSION_ENV`, set by the admin's runtimes) reaches every
    bash session as upstream (env_enable or not); a session's own `env` wins over it."""
    start_env = {"START_VAR": "from-start", "SHARED": "start"}
    env = {"ROCKLET_SESSION_ENV": json.dumps(start_env), **start_env}
    with running_rocklet(tmp_path, env=env) as info, info.client(timeout=30.0) as http:
        for name, fields in (
            ("plain", {}),
            ("all", {"env_enable": True}),
            ("own", {"env": {"SHARED": "own"}}),
        ):
            assert http.post("/create_session", json={"session": name, **fields}).status_code == 200
        assert run(http, "plain", 'echo "$START_VAR $SHARED"').json()["output"] == "from-start start\n"
        assert run(http, "all", 'echo "$START_VAR $SHARED"').json()["output"] == "from-start start\n"
        assert run(http, "own", 'echo "$START_VAR $SHARED"').json()["output"] == "from-start own\n"
        # The carrier variable itself stays out of the shell.
        assert run(http, "all", 'echo "[${ROCKLET_SESSION_ENV:-}]"').json()["output"] == "[]\n"
        r = http.post("/execute", json={"command": "echo $START_VAR", "shell": True})
        assert r.json()["stdout"] == "from-start\n"


def test_bad_session_env_is_a_clear_startup_error(tmp_path) -> None:
    bad = {"ROCKLET_SESSION_ENV": "[1, 2]"}
    with pytest.raises(RuntimeError, match="ROCKLET_SESSION_ENV"), running_rocklet(tmp_path, env=bad):
        pass
