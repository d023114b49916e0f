"""Response models under upstream's import path (`rock.sdk.sandbox.response`); they live in `rock.actions`."""

from rock.actions import (
    BashObservation,
    CloseBashSessionResponse,
    CommandResponse,
    CreateBashSessionResponse,
    IsAliveResponse,
    Observation,
    ProcessInfo,
    ProcessOutputResponse,
    ReadFileResponse,
    SandboxStartResponse,
    SandboxStatusResponse,
    StatisticsResponse,
    UploadResponse,
    WriteFileResponse,
)

__all__ = [
    "BashObservation",
    "CloseBashSessionResponse",
    "CommandResponse",
    "CreateBashSessionResponse",
    "IsAliveResponse",
    "Observation",
    "ProcessInfo",
    "ProcessOutputResponse",
    "ReadFileResponse",
    "SandboxStartResponse",
    "SandboxStatusResponse",
    "StatisticsResponse",
    "UploadResponse",
    "WriteFileResponse",
]
