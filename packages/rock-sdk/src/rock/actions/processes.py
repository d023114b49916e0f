"""Background processes: start detached, poll, read output incrementally, stream, wait, kill."""

from __future__ import annotations

from rock.actions.base import SandboxRequest, WireModel


class StartProcessRequest(SandboxRequest):
    """`POST /processes`. A string command runs through `/bin/sh -c` unless `shell=False`, a list is executed
    as is. The process gets its own process group, stdin from /dev/null, and its output goes to files the
    rocklet keeps until the process is removed. `process_id` picks the id (default: generated)."""

    command: str | list[str]
    shell: bool = True
    env: dict[str, str] | None = None
    cwd: str | None = None
    merge_output_streams: bool = False
    process_id: str | None = None


class ProcessInfo(WireModel):
    """The state of a background process. `exit_code` follows the shell: 128+N when killed by signal N."""

    process_id: str
    pid: int
    command: str | list[str]
    running: bool
    exit_code: int | None = None
    signal: int | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    stdout_bytes: int = 0
    stderr_bytes: int = 0


class ProcessListResponse(WireModel):
    processes: list[ProcessInfo]


class ProcessOutputResponse(WireModel):
    """`GET /processes/{id}/output?stdout_offset=&stderr_offset=&max_bytes=`: the bytes after the offsets
    (decoded with backslashreplace), and the offsets to ask for next time."""

    stdout: str = ""
    stderr: str = ""
    stdout_offset: int = 0
    stderr_offset: int = 0
    running: bool = False
    exit_code: int | None = None


class WaitProcessRequest(SandboxRequest):
    """`POST /processes/{id}/wait`: block until the process ends or `timeout` seconds pass (None: for ever)."""

    timeout: float | None = None


class KillProcessRequest(SandboxRequest):
    """`POST /processes/{id}/kill`: send `signal` (name or number) to the process group."""

    signal: str | int = "SIGTERM"
