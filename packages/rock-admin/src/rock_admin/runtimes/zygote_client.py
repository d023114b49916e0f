"""The admin's side of a zygote (`zygote.py`): started once per runtime, or found running from an earlier admin
(it survives an admin restart), and asked by one JSON line per request on its control socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rock_admin.errors import LaunchError
from rock_admin.runtimes.host import short_path

log = logging.getLogger("rock_admin.runtime")


def build_id() -> str:
    """The zygote's `build_id()`, computed without importing the zygote (which preloads the rocklet)."""
    import rock_admin
    import rocklet
    import rocklet.app

    parts = [rock_admin.__version__, getattr(rocklet, "__version__", "")]
    for path in (rocklet.app.__file__, str(Path(__file__).with_name("zygote.py"))):
        with contextlib.suppress(OSError, TypeError):
            parts.append(str(int(os.stat(path).st_mtime)))
    return "/".join(parts)


class ZygoteClient:
    """A zygote whose control socket, pid file and log are `zygote.{sock,pid,log}` in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.control = str(directory / "zygote.sock")
        self.pid = 0

    async def request(self, payload: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        reader, writer = await asyncio.open_unix_connection(short_path(self.control))
        try:
            writer.write((json.dumps(payload) + "\n").encode())
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), timeout)
        finally:
            writer.close()
        if not line:
            raise LaunchError("the sandbox zygote closed the connection without an answer")
        return json.loads(line)

    async def ask(self, payload: dict[str, Any]) -> dict[str, Any]:
        """`request`, starting a new zygote first when the old one is gone (killed, or the machine rebooted)."""
        try:
            return await self.request(payload)
        except (ConnectionError, FileNotFoundError):
            log.warning("sandbox zygote unreachable; starting a new one")
            await self.ensure()
            return await self.request(payload)

    async def ensure(self) -> int:
        """Reuse a zygote that answers on the control socket with this code's build, else start one."""
        with contextlib.suppress(OSError, ValueError, KeyError, LaunchError, asyncio.TimeoutError):
            reply = await asyncio.wait_for(self.request({"op": "ping"}), 5)
            if reply.get("build") == build_id():
                self.pid = int(reply["pid"])
                return self.pid
            # An older zygote (the code changed since it started): replace it; its sandboxes live on.
            log.info("replacing zygote %s (build %s)", reply.get("pid"), reply.get("build"))
            with contextlib.suppress(OSError):
                os.kill(int(reply["pid"]), signal.SIGTERM)
        log_path = self.directory / "zygote.log"
        log_file = open(log_path, "ab")  # noqa: SIM115 - handed to the child
        # Without the admin's settings (API keys, store URLs): the zygote's environ is every sandbox's too.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROCK_ADMIN_")}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        proc = subprocess.Popen(
            [sys.executable, "-m", "rock_admin.runtimes.zygote", self.control],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        log_file.close()
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise LaunchError(
                    f"the sandbox zygote exited with {proc.returncode}: "
                    f"{log_path.read_text(errors='replace')[-2000:]}"
                )
            with contextlib.suppress(OSError, ValueError, LaunchError):
                await self.request({"op": "ping"})
                break
            if time.monotonic() > deadline:
                raise LaunchError("the sandbox zygote did not answer within 60 s")
            await asyncio.sleep(0.05)
        self.pid = proc.pid
        log.info("zygote started", extra={"pid": proc.pid})
        return proc.pid

    def stop(self) -> None:
        if self.pid:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGTERM)
            with contextlib.suppress(OSError):
                os.waitpid(self.pid, 0)  # when it is our child
            self.pid = 0
