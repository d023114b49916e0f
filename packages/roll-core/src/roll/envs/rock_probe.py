"""Startup probe of a ROCK admin URL: run during config validation, before any model loads."""

from __future__ import annotations

from urllib.parse import urlparse


def url_problem(base_url: object) -> str | None:
    """Why `base_url` is not an http(s) URL with a host, or None."""
    if not isinstance(base_url, str) or not base_url:
        return f"must be an http(s) URL of a ROCK admin, got {base_url!r}"
    parsed = urlparse(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return f"{base_url!r} is not an http(s) URL with a host (e.g. http://127.0.0.1:8080)"
    try:
        parsed.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        return f"{base_url!r}: {exc}"
    return None


def probe_admin(base_url: str, timeout: float = 5.0) -> str | None:
    """Why no ROCK admin answers at `base_url` (unreachable, or something else answers), or None.

    `GET /` of a ROCK admin says `hello, ROCK!`; with API keys on it answers 401, which also proves one is
    there. Standard library only: validation must not need the ROCK SDK installed."""
    import urllib.error
    import urllib.request

    problem = url_problem(base_url)
    if problem:
        return problem
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/", timeout=timeout) as response:
            status, text = response.status, response.read(4096).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        status, text = exc.code, ""
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"no ROCK admin answers at {base_url}: {reason}"
    if status == 401:
        return None
    if status != 200 or "ROCK" not in text:
        return f"{base_url} answered HTTP {status} but is not a ROCK admin (GET / should say 'hello, ROCK!')"
    return None
