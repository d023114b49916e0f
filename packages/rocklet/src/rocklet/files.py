"""Files: text and binary read/write, upload (with safe archive extraction) and streamed download."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath

from rock.actions import (
    ReadFileBytesRequest,
    ReadFileBytesResponse,
    ReadFileRequest,
    ReadFileResponse,
    UploadResponse,
    WriteFileBytesRequest,
    WriteFileBytesResponse,
    WriteFileRequest,
    WriteFileResponse,
)
from rock.exceptions import OutputLimitExceededError, UnsafeArchiveError

_CHUNK = 1 << 20


def _check_size(path: Path, size: int, limit: int) -> None:
    if size > limit:
        raise OutputLimitExceededError(
            f"{path}: {size} bytes is more than this rocklet returns in one reply ({limit} bytes, "
            "--max-read-bytes); use GET /download?path=... or read_file_bytes with offset/length"
        )


def _read_text(request: ReadFileRequest, limit: int) -> ReadFileResponse:
    path = Path(request.path)
    _check_size(path, path.stat().st_size, limit)
    return ReadFileResponse(content=path.read_text(encoding=request.encoding, errors=request.errors))


async def read_file(request: ReadFileRequest, *, max_read_bytes: int) -> ReadFileResponse:
    return await asyncio.to_thread(_read_text, request, max_read_bytes)


def _write_text(request: WriteFileRequest) -> WriteFileResponse:
    path = Path(request.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(request.content, encoding=request.encoding or "utf-8")
    return WriteFileResponse(success=True)


async def write_file(request: WriteFileRequest) -> WriteFileResponse:
    return await asyncio.to_thread(_write_text, request)


def _read_bytes(request: ReadFileBytesRequest, limit: int) -> ReadFileBytesResponse:
    if request.offset < 0 or (request.length is not None and request.length < 0):
        raise ValueError("offset and length must not be negative")
    path = Path(request.path)
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        length = max(size - request.offset, 0) if request.length is None else request.length
        _check_size(path, length, limit)
        f.seek(request.offset)
        data = f.read(length)
    return ReadFileBytesResponse(content_base64=base64.b64encode(data).decode(), size=size)


async def read_file_bytes(request: ReadFileBytesRequest, *, max_read_bytes: int) -> ReadFileBytesResponse:
    return await asyncio.to_thread(_read_bytes, request, max_read_bytes)


def _write_bytes(request: WriteFileBytesRequest) -> WriteFileBytesResponse:
    try:
        data = base64.b64decode(request.content_base64, validate=True)
    except ValueError as exc:
        raise ValueError(f"content_base64: not valid base64 ({exc})") from None
    path = Path(request.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab" if request.append else "wb") as f:
        f.write(data)
        size = f.tell()
    return WriteFileBytesResponse(success=True, size=size)


async def write_file_bytes(request: WriteFileBytesRequest) -> WriteFileBytesResponse:
    return await asyncio.to_thread(_write_bytes, request)


# ---------------------------------------------------------------------------------------------- upload


def _member_target(root: Path, name: str) -> Path:
    """Where archive member `name` lands under `root`; raises when that is outside `root`."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"archive member {name!r} has an absolute path; nothing was extracted")
    if ".." in pure.parts:
        raise UnsafeArchiveError(
            f"archive member {name!r} climbs out of the target with '..'; nothing was extracted"
        )
    return root.joinpath(*[p for p in pure.parts if p not in ("", ".")])


def _check_inside(root: Path, path: Path, name: str) -> None:
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise UnsafeArchiveError(f"archive member {name!r} would be written outside the target ({real})")


def _validate_tar(archive: tarfile.TarFile, root: Path) -> list[tarfile.TarInfo]:
    members = archive.getmembers()
    for m in members:
        dest = _member_target(root, m.name)
        _check_inside(root, dest.parent, m.name)
        if m.isdev() or m.isfifo():
            raise UnsafeArchiveError(f"archive member {m.name!r} is a device or fifo; nothing was extracted")
        if m.issym() or m.islnk():
            link = m.linkname
            base = dest.parent if m.issym() else root
            real_root = os.path.realpath(root)
            real = os.path.realpath(base / link)
            if os.path.isabs(link) or (real != real_root and not real.startswith(real_root + os.sep)):
                raise UnsafeArchiveError(
                    f"archive member {m.name!r} links to {link!r}, outside the target; nothing was extracted"
                )
    return members


def _extract(archive_path: Path, target: Path) -> None:
    """Unpack a zip or tar (any compression) into `target`, after checking every member: nothing is written
    unless the whole archive stays inside `target`."""
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive_path):
        with zipfile.ZipFile(archive_path) as zf:
            infos = zf.infolist()
            for info in infos:
                _check_inside(target, _member_target(target, info.filename).parent, info.filename)
            for info in infos:
                dest = _member_target(target, info.filename)
                mode = info.external_attr >> 16
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                _check_inside(
                    target, dest.parent, info.filename
                )  # a directory link made by an earlier member
                with zf.open(info) as src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
                if mode & 0o777:
                    os.chmod(dest, stat.S_IMODE(mode))
        return
    if tarfile.is_tarfile(archive_path):
        with tarfile.open(archive_path) as tf:
            members = _validate_tar(tf, target)
            if hasattr(tarfile, "data_filter"):
                tf.extractall(target, members=members, filter="data")
            else:  # Python without extraction filters: the checks above are the guard
                tf.extractall(target, members=members)
        return
    raise ValueError("unzip=true but the upload is neither a zip nor a tar archive")


def _place(staged: Path, target: Path, filename: str) -> Path:
    if target.is_dir():
        target = target / (Path(filename).name or "upload")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staged), str(target))
    return target


async def upload(staged: Path, target_path: str, unzip: bool, filename: str) -> UploadResponse:
    """Put an uploaded file (already written to `staged`) in place, or unpack it when `unzip`."""
    if not target_path:
        raise ValueError("target_path: must not be empty")
    target = Path(target_path)
    if unzip:
        await asyncio.to_thread(_extract, staged, target)
        return UploadResponse(success=True, message=f"extracted into {target}", file_name=filename)
    placed = await asyncio.to_thread(_place, staged, target, filename)
    return UploadResponse(success=True, message=f"written to {placed}", file_name=filename)


def parse_bool(value: object, field: str) -> bool:
    """A form boolean as FastAPI reads one."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "y", "t"):
        return True
    if text in ("0", "false", "no", "off", "n", "f", ""):
        return False
    raise ValueError(f"{field}: {value!r} is not a boolean")


# --------------------------------------------------------------------------------------------- download


def _tar_directory(path: Path, staging: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix="download-", suffix=".tar.gz", dir=staging)
    os.close(fd)
    with tarfile.open(name, "w:gz", compresslevel=1) as tf:
        tf.add(path, arcname=".")
    return Path(name)


async def download_stream(path: Path, staging: Path) -> tuple[AsyncIterator[bytes], str, str]:
    """(chunks, media type, file name) for a file, or for a directory as a .tar.gz."""
    if not path.exists():
        raise FileNotFoundError(f"No such file or directory: {str(path)!r}")
    if path.is_dir():
        archive = await asyncio.to_thread(_tar_directory, path, staging)
        return _chunks(archive, delete=True), "application/gzip", (path.name or "root") + ".tar.gz"
    return _chunks(path, delete=False), "application/octet-stream", path.name


async def _chunks(path: Path, delete: bool) -> AsyncIterator[bytes]:
    f = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(f.read, _CHUNK):
            yield chunk
    finally:
        f.close()
        if delete:
            path.unlink(missing_ok=True)
