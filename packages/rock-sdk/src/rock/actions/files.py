"""Files: text read/write (upstream), a binary-safe variant (base64), upload (multipart) and download."""

from __future__ import annotations

from typing import Literal

from rock.actions.base import SandboxRequest, WireModel


class ReadFileRequest(SandboxRequest):
    """`POST /read_file`: the file as text (`encoding`/`errors` as `open()`; default UTF-8, strict)."""

    path: str
    encoding: str | None = None
    errors: str | None = None


class ReadFileResponse(WireModel):
    content: str = ""


class WriteFileRequest(SandboxRequest):
    """`POST /write_file`: write text, creating parent directories. `encoding` defaults to UTF-8."""

    content: str
    path: str
    encoding: str | None = None


class WriteFileResponse(WireModel):
    success: bool = True
    message: str = ""


class ReadFileBytesRequest(SandboxRequest):
    """`POST /read_file_bytes`: `length` bytes (all when None) from `offset`, base64-encoded."""

    path: str
    offset: int = 0
    length: int | None = None


class ReadFileBytesResponse(WireModel):
    content_base64: str = ""
    #: The file's total size, so a caller can page through it.
    size: int = 0


class WriteFileBytesRequest(SandboxRequest):
    """`POST /write_file_bytes`: write (or append) base64-encoded bytes, creating parent directories."""

    path: str
    content_base64: str
    append: bool = False


class WriteFileBytesResponse(WireModel):
    success: bool = True
    size: int = 0


UploadMode = Literal["auto", "oss", "direct"]


class UploadRequest(SandboxRequest):
    """A client-side request (the SDK turns it into a multipart `POST /upload`). A directory travels as an
    archive and is unpacked into `target_path`."""

    source_path: str
    target_path: str
    upload_mode: UploadMode = "auto"


class UploadResponse(WireModel):
    success: bool = True
    message: str = ""
    file_name: str = ""
