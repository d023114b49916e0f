"""`sandbox.fs`: upstream's `LinuxFileSystem` (`chown`, `chmod`, `upload_dir`, `download_file`), over the
admin's `execute`, `upload`, background processes and `download` routes.

`download_file` downloads directly (upstream goes through OSS only); the rest keeps upstream's semantics:
`upload_dir` replaces `target_dir` with the directory's contents, and every helper answers with a result object
(`success`/`exit_code` and a message) instead of raising on what went wrong inside the sandbox.
"""

from __future__ import annotations

import shlex
import tarfile
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from rock.actions import BashObservation, Command

if TYPE_CHECKING:
    from rock.sdk.sandbox.client import Sandbox


class ChownRequest(BaseModel):
    remote_user: str
    paths: list[str] = Field(default_factory=list)
    recursive: bool = False


class ChmodRequest(BaseModel):
    paths: list[str] = Field(default_factory=list)
    mode: str = "755"
    recursive: bool = False


class ChownResponse(BaseModel):
    success: bool = False
    message: str = ""


class ChmodResponse(BaseModel):
    success: bool = False
    message: str = ""


class DownloadFileResponse(BaseModel):
    success: bool = False
    message: str = ""


def _need_paths(paths: list[str]) -> None:
    if not paths:
        raise ValueError("paths: at least one path is required")


class LinuxFileSystem:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def chown(self, request: ChownRequest) -> ChownResponse:
        """`chown [-R] user:user paths...` in the sandbox."""
        _need_paths(request.paths)
        owner = f"{request.remote_user}:{request.remote_user}"
        argv = ["chown", *(["-R"] if request.recursive else []), owner, *request.paths]
        res = await self.sandbox.execute(Command(command=argv))
        return ChownResponse(success=res.exit_code == 0, message=res.stderr or res.stdout)

    async def chmod(self, request: ChmodRequest) -> ChmodResponse:
        """`chmod [-R] mode paths...` in the sandbox."""
        _need_paths(request.paths)
        argv = ["chmod", *(["-R"] if request.recursive else []), request.mode, *request.paths]
        res = await self.sandbox.execute(Command(command=argv))
        return ChmodResponse(success=res.exit_code == 0, message=res.stderr or res.stdout)

    async def upload_dir(
        self, source_dir: str | Path, target_dir: str, extract_timeout: int = 600
    ) -> BashObservation:
        """Replace `target_dir` (absolute) in the sandbox with the contents of the local `source_dir`: packed
        here as .tar.gz, uploaded, unpacked by a background process waited for up to `extract_timeout` s."""
        src = Path(source_dir).expanduser().resolve()
        if not src.is_dir():
            what = "not found" if not src.exists() else "not a directory"
            return BashObservation(exit_code=1, failure_reason=f"source_dir: {what}: {src}")
        if not target_dir.startswith("/"):
            return BashObservation(
                exit_code=1, failure_reason=f"target_dir: must be absolute, got {target_dir!r}"
            )
        remote_tar = f"/tmp/rock_upload_{time.time_ns()}.tar.gz"
        check = await self.sandbox.execute(Command(command=["sh", "-c", "command -v tar"]))
        if check.exit_code != 0:
            return BashObservation(
                exit_code=1, failure_reason="the sandbox has no tar command to unpack with"
            )
        with tempfile.TemporaryDirectory(prefix="rock-upload-dir-") as tmp:
            local_tar = Path(tmp) / "upload.tar.gz"
            with tarfile.open(local_tar, "w:gz") as tar:
                tar.add(str(src), arcname=".")
            uploaded = await self.sandbox.upload_by_path(local_tar, remote_tar)
        if not uploaded.success:
            return BashObservation(exit_code=1, failure_reason=f"tar upload failed: {uploaded.message}")
        target, archive = shlex.quote(target_dir), shlex.quote(remote_tar)
        unpack = f"rm -rf {target} && mkdir -p {target} && tar -xzf {archive} -C {target}; rc=$?; rm -f {archive}; exit $rc"
        res = await self.sandbox.arun(unpack, mode="nohup", wait_timeout=extract_timeout)
        if res.exit_code != 0:
            return BashObservation(
                output=res.output,
                exit_code=res.exit_code or 1,
                failure_reason=f"tar extract failed: {res.output}",
            )
        return BashObservation(exit_code=0, output=f"uploaded {src} -> {target_dir} via tar")

    async def download_file(self, remote_path: str, local_path: str | Path) -> DownloadFileResponse:
        """Save the sandbox's regular file `remote_path` at `local_path` (directories: tar them first)."""
        check = await self.sandbox.execute(Command(command=["test", "-f", remote_path]))
        if check.exit_code != 0:
            return DownloadFileResponse(
                message=f"remote_path: not a regular file in the sandbox: {remote_path} "
                "(only regular files; for a directory, create a tar archive first)"
            )
        local = Path(local_path).expanduser().resolve()
        await self.sandbox.download(remote_path, local)
        return DownloadFileResponse(success=True, message=f"downloaded {remote_path} to {local}")
