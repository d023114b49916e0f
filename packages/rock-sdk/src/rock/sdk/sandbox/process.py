"""`sandbox.process`: upstream's `Process.execute_script`, over `write_file` and a background process (`arun`'s
nohup mode), so the observation carries the script's real exit code (upstream reports 0 or 1)."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from rock.actions import BashObservation, Command

if TYPE_CHECKING:
    from rock.sdk.sandbox.client import Sandbox


class Process:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def execute_script(
        self,
        script_content: str,
        script_name: str | None = None,
        wait_timeout: int = 300,
        wait_interval: int = 10,
        cleanup: bool = True,
    ) -> BashObservation:
        """Write `script_content` to `/tmp/<script_name>` (default `script_<ns>.sh`), run it with bash in the
        background, wait up to `wait_timeout` s, and remove it afterwards when `cleanup`."""
        if script_name is not None and (not script_name or "/" in script_name or script_name in (".", "..")):
            return BashObservation(
                exit_code=1, failure_reason=f"script_name: must be a plain file name, got {script_name!r}"
            )
        script_path = f"/tmp/{script_name or f'script_{time.time_ns()}.sh'}"
        try:
            written = await self.sandbox.write_file_by_path(script_content, script_path)
            if not written.success:
                return BashObservation(
                    output=written.message,
                    exit_code=1,
                    failure_reason=f"script upload failed: {written.message}",
                )
            return await self.sandbox.arun(
                f"bash {script_path}", mode="nohup", wait_timeout=wait_timeout, wait_interval=wait_interval
            )
        finally:
            if cleanup:
                with contextlib.suppress(Exception):  # best effort: never hides the script's own result
                    await self.sandbox.execute(Command(command=["rm", "-f", script_path]))
