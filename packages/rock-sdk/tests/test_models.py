"""The wire models keep upstream's field names and defaults."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

from pydantic import TypeAdapter

import rock
from rock.actions import (
    Action,
    BashAction,
    BashInterruptAction,
    BashObservation,
    CloseBashSessionRequest,
    Command,
    CommandResponse,
    CreateBashSessionRequest,
    EnvStepResponse,
    IsAliveResponse,
    ReadFileRequest,
    UploadRequest,
    WriteFileRequest,
)


def test_defaults_match_upstream() -> None:
    assert CreateBashSessionRequest().model_dump(exclude={"sandbox_id"}) == {
        "session_type": "bash",
        "session": "default",
        "startup_source": [],
        "startup_timeout": 1.0,
        "env_enable": False,
        "env": None,
        "remote_user": None,
        "max_read_size": 2000,
    }
    assert BashAction(command="ls").model_dump(exclude={"sandbox_id"}) == {
        "action_type": "bash",
        "command": "ls",
        "session": "default",
        "timeout": None,
        "is_interactive_command": False,
        "is_interactive_quit": False,
        "check": "raise",
        "error_msg": "",
        "expect": [],
    }
    assert BashInterruptAction().model_dump(exclude={"sandbox_id"}) == {
        "action_type": "bash_interrupt",
        "session": "default",
        "timeout": 0.2,
        "n_retry": 3,
        "expect": [],
    }
    assert BashObservation().model_dump() == {
        "session_type": "bash",
        "output": "",
        "exit_code": None,
        "failure_reason": "",
        "expect_string": "",
    }
    assert CloseBashSessionRequest().session == "default"
    cmd = Command(command=["ls"])
    assert (cmd.timeout, cmd.shell, cmd.check, cmd.env, cmd.cwd, cmd.merge_output_streams) == (
        1200,
        False,
        False,
        None,
        None,
        False,
    )
    assert CommandResponse().model_dump() == {"stdout": "", "stderr": "", "exit_code": None}
    assert ReadFileRequest(path="/x").model_dump(exclude={"sandbox_id"}) == {
        "path": "/x",
        "encoding": None,
        "errors": None,
    }
    assert WriteFileRequest(path="/x", content="c").content == "c"
    assert UploadRequest(source_path="a", target_path="b").upload_mode == "auto"


def test_action_union_discriminates() -> None:
    adapter = TypeAdapter(Action)
    assert isinstance(adapter.validate_python({"action_type": "bash", "command": "x"}), BashAction)
    assert isinstance(adapter.validate_python({"action_type": "bash_interrupt"}), BashInterruptAction)


def test_sandbox_id_accepted_never_required_and_unknown_fields_ignored() -> None:
    assert BashAction(command="x", sandbox_id="sb").sandbox_id == "sb"
    assert BashAction.model_validate({"command": "x", "brand_new_field": 1}).command == "x"


def test_is_alive_truthiness_and_env_models() -> None:
    assert not IsAliveResponse(is_alive=False)
    assert IsAliveResponse(is_alive=True)
    step = EnvStepResponse(observation="o", reward=1, terminated=False, truncated=False)
    assert step.info == {}


def test_import_rock_is_light() -> None:
    code = (
        "import sys, rock, rock.actions, rock.exceptions, rock.rocklet_client;"
        "heavy = [m for m in ('litestar', 'torch', 'uvicorn', 'rocklet', 'numpy') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"
    assert rock.__version__ == importlib.metadata.version("rock-sdk")  # the code's version is the package's
