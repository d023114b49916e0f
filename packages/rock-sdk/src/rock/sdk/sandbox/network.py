"""`sandbox.network`: reaching into and out of the sandbox's network (upstream's `Network`).

Port forwarding (`port_forward`, `local_forward`) is an addition: upstream's SDK has none.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from rock.sdk.sandbox.portforward import LocalForward, PortForwardStream, local_forward, port_forward

if TYPE_CHECKING:
    from rock.sdk.sandbox.client import Sandbox


class Network:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

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
