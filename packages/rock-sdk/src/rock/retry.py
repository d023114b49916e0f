"""When to send a request again and how long to wait first: the one retry policy of every ROCK client (the SDK's
transports, the rocklet's model-service proxy, roll's sandbox-served envs). Callers keep their own loops, since
what may be resent differs per call (a file body cannot be, a lost connection can with the same request id);
the errors, statuses and delays they retry on come from here."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import httpx

#: The connection broke before a reply came (the request may or may not have run): safe to send again with the
#: same `X-Request-ID`, which the rocklet answers from its replay cache instead of running it twice.
RETRYABLE_ERRORS: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)
#: Statuses only a proxy in between answers (the rocklet itself never does): retried like a lost connection.
RETRYABLE_STATUSES = frozenset({502, 503, 504})


def backoff_delay(attempt: int, base: float, cap: float = 2.0, jitter: bool = True) -> float:
    """Seconds before retry `attempt` (0-based): `base` doubling, at most `cap`; with jitter (×0.5–1) so that
    many clients retrying at once do not arrive together."""
    delay = min(cap, base * (2**attempt))
    return delay * (0.5 + random.random() / 2) if jitter else delay


def delays_within(seconds: float, base: float = 0.1, cap: float = 2.0) -> Iterator[float]:
    """Back-off delays (`base` doubling to `cap`, no jitter) for as long as the next one still ends within
    `seconds` from the first call: a retry budget in time rather than in attempts."""
    deadline = time.monotonic() + seconds
    attempt = 0
    while time.monotonic() + (delay := backoff_delay(attempt, base, cap, jitter=False)) <= deadline:
        yield delay
        attempt += 1
