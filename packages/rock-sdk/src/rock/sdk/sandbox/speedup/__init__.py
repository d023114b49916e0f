"""`sandbox.network.speedup(...)`: point apt or pip at a mirror, or pin github.com's address, inside the sandbox
(upstream's speedup strategies: a precheck, then a generated script run by `process.execute_script`).

- APT: the Debian/Ubuntu archive hosts in `/etc/apt/sources.list{,.d/*.list,.d/*.sources}` become the mirror
  (`http://mirror` → `http://mirror/debian`, `.../debian-security`, `.../ubuntu`); no `apt-get update` is run.
- PIP: `pip config --user` sets `global.index-url` to `<mirror>/pypi/simple/` and `global.trusted-host`.
- GITHUB: `/etc/hosts` gets `<ip> github.com` (replacing an older github.com line; the file keeps its inode).
A root file system that is read-only (the process runtime's image) fails the precheck or the script, saying so.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from rock.actions import BashObservation, Command
from rock.sdk.sandbox.speedup.types import SpeedupType

if TYPE_CHECKING:
    from rock.sdk.sandbox.client import Sandbox

#: A mirror base URL: nothing a shell or sed expression could misread.
_MIRROR = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")

_PRECHECKS: dict[SpeedupType, tuple[list[str], str]] = {
    SpeedupType.APT: (
        ["test", "-f", "/etc/debian_version"],
        "This is not a Debian/Ubuntu system, APT speedup is not supported",
    ),
    SpeedupType.PIP: (
        ["sh", "-c", "pip3 --version 2>&1 || pip --version 2>&1"],
        "pip is not installed, PIP speedup is not supported",
    ),
    SpeedupType.GITHUB: (
        ["test", "-w", "/etc/hosts"],
        "/etc/hosts is not writable, GitHub speedup requires root privileges and a writable /etc",
    ),
}

_APT = r"""set -e
mirror={mirror}
files=$(ls /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$files" ] || {{ echo "no apt sources under /etc/apt"; exit 1; }}
for f in $files; do [ -w "$f" ] || {{ echo "$f is not writable"; exit 1; }}; done
for f in $files; do
    sed -i -E "s#https?://(deb|security)\.debian\.org#$mirror#g; s#https?://(archive|security|ports)\.ubuntu\.com#$mirror#g" "$f"
done
echo "apt sources now use $mirror"
"""

_PIP = """set -e
pip=$(command -v pip3 || command -v pip)
"$pip" config --user set global.index-url {index_url}
"$pip" config --user set global.trusted-host {host}
echo "pip now uses "{index_url}
"""

_GITHUB = r"""set -e
entry={entry}
kept=$(grep -v -E '[[:space:]]github\.com([[:space:]]|$)' /etc/hosts || true)
printf '%s\n%s\n' "$kept" "$entry" > /etc/hosts
echo "/etc/hosts: $entry"
"""


def _mirror(value: str) -> str:
    base = value.strip().rstrip("/")
    if not _MIRROR.fullmatch(base):
        raise ValueError(
            f"speedup_value: must be a mirror URL like http://mirrors.example.com, got {value[:80]!r}"
        )
    return base


def script(speedup_type: SpeedupType, speedup_value: str) -> str:
    """The bash script for `speedup_type`; a `ValueError` naming `speedup_value` when it does not fit."""
    if speedup_type is SpeedupType.APT:
        return _APT.format(mirror=shlex.quote(_mirror(speedup_value)))
    if speedup_type is SpeedupType.PIP:
        base = _mirror(speedup_value)
        return _PIP.format(
            index_url=shlex.quote(f"{base}/pypi/simple/"), host=shlex.quote(urlsplit(base).netloc)
        )
    try:
        ip = ipaddress.ip_address(speedup_value.strip())
    except ValueError:
        raise ValueError(
            f"speedup_value: must be an IP address for github.com, got {speedup_value[:80]!r}"
        ) from None
    return _GITHUB.format(entry=shlex.quote(f"{ip} github.com"))


async def speedup(
    sandbox: Sandbox, speedup_type: SpeedupType | str, speedup_value: str, timeout: int = 300
) -> BashObservation:
    try:
        kind = SpeedupType(speedup_type)
    except ValueError:
        choices = ", ".join(t.value for t in SpeedupType)
        message = f"speedup_type: must be one of {choices}, got {speedup_type!r}"
        return BashObservation(output=message, exit_code=1, failure_reason="Invalid speedup type")
    try:
        content = script(kind, speedup_value)
    except ValueError as exc:
        return BashObservation(output=str(exc), exit_code=1, failure_reason="Script generation failed")
    argv, refusal = _PRECHECKS[kind]
    check = await sandbox.execute(Command(command=argv, timeout=60))
    if check.exit_code != 0:
        return BashObservation(output=refusal, exit_code=1, failure_reason="Precheck failed")
    return await sandbox.process.execute_script(script_content=content, wait_timeout=timeout, cleanup=True)
