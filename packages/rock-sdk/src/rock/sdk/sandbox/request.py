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
from rock.sdk.sandbox.fs import ChmodRequest, ChownRequest
from rock.sdk.sandbox.speedup.types import SpeedupType

__all__ = [
    "Action",
    "BashAction",
    "BashInterruptAction",
    "ChmodRequest",
    "ChownRequest",
    "CloseBashSessionRequest",
    "Command",
    "CreateBashSessionRequest",
    "KillProcessRequest",
    "ReadFileRequest",
    "SpeedupType",
    "StartProcessRequest",
    "UploadMode",
    "UploadRequest",
    "WaitProcessRequest",
    "WriteFileRequest",
]
