"""What a bash session's shell is started with and typed: its rc file (the per-session prompt marker, re-set before
every prompt, and the in-shell syntax check), its environment, and the one line that runs a command."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from rock.actions import CreateBashSessionRequest
from rocklet.config import SESSION_ENV_VAR
from rocklet.sessions.quoting import ansi_c_quote, shell_single_quote

#: Commands longer than this go through a file instead of the typed line.
INLINE_MAX = 1024
_MINIMAL_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "SHELL", "TZ", "TMPDIR")
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def prompt_marker(token: str) -> str:
    """The prompt, as bash expands it: the marker with the last exit code."""
    return f"__ROCKPS1_{token}_$?__"


def rc_text(token: str, startup_source: list[str], syntax_marker: str) -> str:
    lines = [f"source {src}" for src in startup_source]
    lines += [
        "unset HISTFILE PROMPT_COMMAND",
        "set +o history",
        f"__rock_ps1='{prompt_marker(token)}'",
        "PS1=$__rock_ps1; PS2=''; PS0=''",
        "PROMPT_COMMAND='PS1=$__rock_ps1'",
        "bind 'set enable-bracketed-paste off' 2>/dev/null",
        # Parse the command as a function body (parsing runs nothing); on failure print the syntax marker.
        "__rock_chk() { if eval \"__rock_syn() { :\"$'\\n'\"$__rock_c\"$'\\n''}' 2>/dev/null; then "
        f"unset -f __rock_syn; return 0; fi; printf '%s' '{syntax_marker}'; return 2; }}",
        "",
    ]
    return "\n".join(lines)


def shell_environment(
    request: CreateBashSessionRequest, base_env: dict[str, str], user: pwd.struct_passwd | None, token: str
) -> dict[str, str]:
    """The rocklet's environment (or a minimal one without `env_enable`), then the session's own variables."""
    if request.env_enable:
        env = dict(os.environ)
        env.pop(SESSION_ENV_VAR, None)
    else:
        env = {k: os.environ[k] for k in _MINIMAL_ENV if k in os.environ}
        env.setdefault("PATH", _DEFAULT_PATH)
    if user is not None:
        env.update(
            HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name, SHELL=user.pw_shell or "/bin/bash"
        )
    env.update(base_env)
    env.update(request.env or {})
    env["TERM"] = "dumb"
    env["PS1"] = prompt_marker(token)
    env["PS2"] = ""
    env.pop("PROMPT_COMMAND", None)
    return env


def command_line(command: str, cmd_file: Path, checked: bool = True) -> bytes:
    """The line typed into the shell: the command in a variable (inline, or read from `cmd_file` when long),
    syntax-checked unless `checked` is false, then `eval`ed."""
    run = '__rock_chk && eval "$__rock_c"' if checked else 'eval "$__rock_c"'
    if len(command) <= INLINE_MAX:
        return f"__rock_c={ansi_c_quote(command)}; {run}\n".encode()
    cmd_file.write_bytes(command.encode("utf-8", "surrogateescape"))
    return f"IFS= read -r -d '' __rock_c < {shell_single_quote(str(cmd_file))}; {run}\n".encode()
