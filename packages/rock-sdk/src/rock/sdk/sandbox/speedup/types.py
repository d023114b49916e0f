"""`SpeedupType` at upstream's import path (`rock.sdk.sandbox.speedup.types`)."""

from __future__ import annotations

from enum import Enum


class SpeedupType(str, Enum):
    APT = "apt"
    PIP = "pip"
    GITHUB = "github"
