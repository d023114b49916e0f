"""`sandbox.network`: upstream's `Network.speedup` (apt/pip mirrors, github.com's address), plus port forwarding
(`port_forward`, `local_forward`), an addition: upstream's SDK has none."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from rock.actions import BashObservation
from rock.sdk.sandbox import speedup as _speedup
from rock.sdk.sandbox.portforward import LocalForward, PortForwardStream, local_forward, port_forward
from rock.sdk.sandbox.speedup.types import SpeedupType

if TYPE_CHECKING:
    from rock.sdk.sandbox.client import Sandbox


class Network:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def speedup(
        self, speedup_type: SpeedupType | str, speedup_value: str, timeout: int = 300
    ) -> BashObservation:
        """Point apt (`SpeedupType.APT`, a mirror URL) or pip (`PIP`, a mirror URL) at a mirror, or github.com
        at an address (`GITHUB`, an IP). A precheck or script failure comes back as `exit_code=1` with why."""
        return await _speedup.speedup(self.sandbox, speedup_type, speedup_value, timeout)

    def port_forward(
        self, port: int, open_timeout: float = 30.0
    ) -> AbstractAsyncContextManager[PortForwardStream]:
        """`async with sandbox.network.port_forward(8000) as stream:` one TCP connection to 127.0.0.1:8000
        inside the sandbox (`stream.send`, `stream.receive`, `stream.read`)."""
        return port_forward(self.sandbox, port, open_timeout)

    def local_forward(
        self, port: int, local_port: int = 0, host: str = "127.0.0.1"
    ) -> AbstractAsyncContextManager[LocalForward]:
        """`async with sandbox.network.local_forward(8000) as fwd:` connections to `fwd.host:fwd.port` reach
        port 8000 inside the sandbox (one forward each) until the block ends."""
        return local_forward(self.sandbox, port, local_port, host)
