"""How an exception travels from the rocklet to a client (HTTP 511, as SWE-ReX and ROCK)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from rock.actions.base import WireModel

#: The status code of a serialised exception.
EXCEPTION_STATUS_CODE = 511
#: Keys of the error body: ROCK's rocklet uses the first, SWE-ReX the second. The rocklet sends both.
EXCEPTION_KEYS = ("rockletexception", "swerexception")


class ExceptionTransfer(WireModel):
    """An exception as data: the client rebuilds `class_path` with `message` and sets `extra_info`."""

    message: str = ""
    class_path: str = ""
    traceback: str = ""
    extra_info: dict[str, Any] = Field(default_factory=dict)
    #: An addition: the class paths of the exception's bases, nearest first, so a client that cannot import
    #: `class_path` can still raise something that `except ValueError:` (say) catches.
    bases: list[str] = Field(default_factory=list)
