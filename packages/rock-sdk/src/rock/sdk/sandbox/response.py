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
from rock.sdk.sandbox.fs import ChmodResponse, ChownResponse, DownloadFileResponse
from rock.sdk.sandbox.portforward import LocalForward, PortForwardError, PortForwardStream

__all__ = [
    "BashObservation",
    "ChmodResponse",
    "ChownResponse",
    "CloseBashSessionResponse",
    "CommandResponse",
    "CreateBashSessionResponse",
    "DownloadFileResponse",
    "IsAliveResponse",
    "LocalForward",
    "Observation",
    "PortForwardError",
    "PortForwardStream",
    "ProcessInfo",
    "ProcessOutputResponse",
    "ReadFileResponse",
    "SandboxStartResponse",
    "SandboxStatusResponse",
    "StatisticsResponse",
    "UploadResponse",
    "WriteFileResponse",
]
