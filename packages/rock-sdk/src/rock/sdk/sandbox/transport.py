"""How a `Sandbox` reaches the admin: which node serves an operation (lifecycle calls to `write_url`, the rest
to a read node, the next one when one cannot be reached), its headers, retries with one `X-Request-ID` (the
admin answers a repeat from its replay cache), and ROCK's envelope turned into a result or an exception."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx

from rock.actions import SANDBOX_API_PREFIX, ExceptionTransfer
from rock.retry import RETRYABLE_ERRORS, RETRYABLE_STATUSES, backoff_delay
from rock.rocklet_client import new_request_id, rebuild_exception, shared_ssl_context
from rock.sdk.sandbox.config import SandboxConfig
from rock.sdk.sandbox.errors import SandboxError, SandboxRequestError, SandboxUnreachableError

#: Calls only the write cluster serves (`write_url`, when set).
LIFECYCLE_OPS = frozenset({"start", "start_async", "stop", "delete", "restart"})


def _api(base_url: str) -> str:
    return base_url.rstrip("/") + SANDBOX_API_PREFIX


class AdminTransport:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._reads = [_api(u) for u in config.read_urls] or [_api(config.base_url)]
        self._read = random.randrange(len(self._reads))  # spreads sandboxes over the read nodes
        self._write = _api(config.write_url) if config.write_url else None
        self._http: httpx.AsyncClient | None = None

    @property
    def url(self) -> str:
        """`{base}/apis/envs/sandbox/v1` of the read node data-plane calls go to now."""
        return self._reads[self._read]

    @url.setter
    def url(self, value: str) -> None:
        self._reads, self._read = [value.rstrip("/")], 0

    def base(self, op: str) -> str:
        return (self._write or self.url) if op in LIFECYCLE_OPS else self.url

    def headers(self) -> dict[str, str]:
        c = self.config
        headers = {"X-Cluster": c.cluster, **c.extra_headers}
        if c.xrl_authorization:
            headers["XRL-Authorization"] = f"Bearer {c.xrl_authorization}"
        if c.api_key:
            headers["X-API-Key"] = c.api_key
        for name, value in (
            ("X-User-Id", c.user_id),
            ("X-Experiment-Id", c.experiment_id),
            ("X-Namespace", c.namespace),
        ):
            if value:
                headers[name] = value
        return headers

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None or self._http.is_closed:
            self._http = httpx.AsyncClient(
                headers=self.headers(),
                verify=shared_ssl_context(),
                timeout=httpx.Timeout(None, connect=30.0),
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def request(
        self,
        method: str,
        op: str,
        sandbox_id: str | None,
        *,
        json: Any = None,
        params: Any = None,
        timeout: float | None = None,
        **kw: Any,
    ) -> Any:
        """`op`'s `result`; a `Failed` envelope raises (`raise_failed`), an admin out of reach after the
        retries raises `SandboxUnreachableError`."""
        lifecycle = op in LIFECYCLE_OPS and self._write is not None
        nodes = 1 if lifecycle else len(self._reads)
        # A file body is a stream that cannot be sent twice: only "never connected" errors are retried for it.
        retries = 0 if "files" in kw else self.config.request_retries
        headers = {"X-Request-ID": new_request_id()}
        attempt = 0
        while True:
            base = self.base(op)
            try:
                response = await self.http.request(
                    method, f"{base}/{op}", json=json, params=params, timeout=timeout, headers=headers, **kw
                )
            except httpx.ConnectError as exc:  # never sent: safe to send to the next read node
                if attempt + 1 < max(nodes, retries + 1):
                    if nodes > 1:
                        self._read = (self._read + 1) % len(self._reads)
                    await self._backoff(attempt, rotated=nodes > 1)
                    attempt += 1
                    continue
                raise unreachable(op, base, exc, sandbox_id) from exc
            except RETRYABLE_ERRORS as exc:  # lost mid-request: the same id again, answered from the replay
                if attempt < retries:
                    await self._backoff(attempt)
                    attempt += 1
                    continue
                raise unreachable(op, base, exc, sandbox_id) from exc
            except httpx.HTTPError as exc:
                raise unreachable(op, base, exc, sandbox_id) from exc
            if response.status_code in RETRYABLE_STATUSES and attempt < retries:
                await self._backoff(attempt)
                attempt += 1
                continue
            break
        try:
            body = response.json()
        except ValueError:
            raise SandboxError(
                f"{op} on sandbox {sandbox_id}: HTTP {response.status_code}: {response.text[:500]}",
                sandbox_id=sandbox_id,
            ) from None
        if response.status_code >= 400 or not isinstance(body, dict) or body.get("status") != "Success":
            if not isinstance(body, dict) or "status" not in body:
                body = {"message": f"HTTP {response.status_code}: {body}"}
            raise_failed(op, body, sandbox_id)
        return body.get("result")

    async def _backoff(self, attempt: int, rotated: bool = False) -> None:
        if not (rotated and attempt == 0):  # the first try on another node goes at once
            await asyncio.sleep(backoff_delay(attempt, self.config.retry_backoff))


def raise_failed(op: str, body: dict[str, Any], sandbox_id: str | None) -> None:
    """A `Failed` envelope as the remote exception's own class when the admin names it, else
    `SandboxRequestError`; either way `sandbox_id` is set on it."""
    result = body.get("result") if isinstance(body.get("result"), dict) else {}
    message = body.get("message") or body.get("error") or "request failed"
    class_path = result.get("class_path") if result else None
    if class_path:
        exc = rebuild_exception(
            ExceptionTransfer(
                message=message, class_path=class_path, extra_info=result.get("extra_info") or {}
            )
        )
        exc.sandbox_id = sandbox_id  # type: ignore[attr-defined]
        raise exc
    raise SandboxRequestError(
        f"{op} failed on sandbox {sandbox_id}: {message}",
        sandbox_id=sandbox_id,
        code=result.get("code") if result else None,
    )


def unreachable(op: str, base: str, exc: Exception, sandbox_id: str | None) -> SandboxUnreachableError:
    where = f"{op} on sandbox {sandbox_id}" if sandbox_id else op
    return SandboxUnreachableError(
        f"{where}: cannot reach the admin at {base}: {type(exc).__name__}: {exc}", sandbox_id=sandbox_id
    )
