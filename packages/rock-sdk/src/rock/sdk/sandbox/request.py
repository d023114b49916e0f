"""Request models under upstream's import path (`rock.sdk.sandbox.request`); they live in `rock.actions`."""

from rock.actions import (
    Action,
    BashAction,
    BashInterruptAction,
    CloseBashSessionRequest,
    Command,
    CreateBashSessionRequest,
    KillProcessRequest,
    ReadFileRequest,
    StartProcessRequest,
    UploadMode,
    UploadRequest,
    WaitProcessRequest,
    WriteFileRequest,
)

__all__ = [
    "Action",
    "BashAction",
    "BashInterruptAction",
    "CloseBashSessionRequest",
    "Command",
    "CreateBashSessionRequest",
    "KillProcessRequest",
    "ReadFileRequest",
    "StartProcessRequest",
    "UploadMode",
    "UploadRequest",
    "WaitProcessRequest",
    "WriteFileRequest",
]
