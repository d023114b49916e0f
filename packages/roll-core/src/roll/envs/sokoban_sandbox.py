"""`sokoban_sandbox`: ROLL's SokobanSandboxEnv — Sokoban played inside a ROCK sandbox (`reference/roll.md` §4).

On the first `reset` the env starts a sandbox through the ROCK SDK at `base_url`, opens two bash sessions
(`default`, `server_session`) and starts `roll.envs.sokoban_server` in `server_session` with the level
arguments, as upstream does. Each reset/step is then one JSON line to the server and one back over a
port-forward stream (`roll.envs.game_link`: the admin relays it to the rocklet, the rocklet to the server's
TCP port), not a bash command per step: a request costs about a tenth of a session command's round trip.
Observations, rewards and infos are those of gem_envs' ROLL-style `sokoban` with the same arguments (the
server runs exactly that env).

Faults: while the admin is unreachable (or its stream broke, e.g. the admin restarted), calls are retried
with backoff on a new stream for `retry_timeout` seconds (requests carry sequence numbers, so a resent step
is never applied twice), then `EnvUnavailableError` names the URL.
A dead sandbox or game server raises `SandboxEnvError`; `healthy()` tells the env manager whether to reuse
the env (sandbox alive, game server answers) or replace it.
The env is synchronous; the SDK calls run on one event loop thread shared by all envs (`roll.envs.event_loop`).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import shlex
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from roll.config.hints import did_you_mean
from roll.envs.event_loop import run_sync
from roll.envs.game_link import GameLink, GameServerClosed
from roll.envs.rock_probe import url_problem
from roll.errors import EnvUnavailableError, SandboxEnvError

SERVER_MODULE = "roll.envs.sokoban_server"
# close codes and handshake statuses of a port forward that no retry can fix: the sandbox is not running
# (1008, 404) or nothing answers on the game server's port (1011)
_FINAL_CODES = (1008, 1011, 401, 403, 404)
_NUMBER_KEYS = (
    "server_start_timeout",
    "auto_clear_seconds",
    "startup_timeout",
    "retry_timeout",
    "request_timeout",
    "cpus",
)


class SokobanSandboxEnv:
    """GEM env (`reset`/`step`/`close`) whose game runs in a ROCK sandbox; level args as ROLL's `sokoban`."""

    def __init__(
        self,
        base_url: str = "http://localhost:8080",
        server_start_timeout: float = 60.0,
        image: str = "python:3.11",
        auto_clear_seconds: int = 7200,
        startup_timeout: float = 360.0,
        memory: str = "1g",
        cpus: float = 1.0,
        retry_timeout: float = 60.0,
        request_timeout: float = 60.0,
        python: str | None = None,
        game_env_id: str = "sokoban",
        **level: Any,
    ) -> None:
        problems = self.check_config(
            {
                "base_url": base_url,
                "server_start_timeout": server_start_timeout,
                "auto_clear_seconds": auto_clear_seconds,
                "startup_timeout": startup_timeout,
                "retry_timeout": retry_timeout,
                "request_timeout": request_timeout,
                "cpus": cpus,
                "game_env_id": game_env_id,
                **level,
            }
        )
        if problems:
            raise ValueError("; ".join(f"{key}: {msg}" for key, msg in problems))
        self.base_url = base_url.rstrip("/")
        self.server_start_timeout = float(server_start_timeout)
        self.image, self.memory, self.cpus = image, memory, float(cpus)
        self.auto_clear_seconds, self.startup_timeout = int(auto_clear_seconds), float(startup_timeout)
        self.retry_timeout, self.request_timeout = float(retry_timeout), float(request_timeout)
        # sandboxes of the process runtime see the host's root read-only: the trainer's interpreter is there
        self.python = python or sys.executable
        self.game_env_id, self.level = game_env_id, dict(level)
        self.sandbox: Any = None
        self.sandbox_id: str | None = None
        self._link: GameLink | None = None
        self.render_cache: str = ""  # the last observation, for render() (as ROLL keeps the last map)
        self._n = 0
        self._lock = threading.Lock()
        self._closed = False
        self._starting: Any = None  # the sandbox whose start is in flight (close() stops it too)

    # ------------------------------------------------------------------ validation

    @classmethod
    def check_config(cls, env_config: dict[str, Any]) -> list[tuple[str, str]]:
        """(key, problem) pairs for an `env_config`, without touching the network: URL, numbers, level args."""
        import gem_envs

        problems: list[tuple[str, str]] = []
        if "base_url" in env_config and (problem := url_problem(env_config["base_url"])):
            problems.append(("base_url", problem))
        for key in _NUMBER_KEYS:
            value = env_config.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                problems.append((key, f"must be a positive number, got {value!r}"))
        own = set(inspect.signature(cls.__init__).parameters) - {"self", "level"}
        level = {k: v for k, v in env_config.items() if k not in own}
        game = env_config.get("game_env_id", "sokoban")
        try:
            spec = gem_envs.spec(game)
        except gem_envs.UnknownEnvError as exc:
            return [*problems, ("game_env_id", str(exc).split(" Registered ids:")[0])]
        accepted = set(inspect.signature(spec.load()).parameters)
        unknown = [k for k in level if k not in accepted]
        for key in unknown:
            hint = did_you_mean(key, [*accepted, *own])
            problems.append((key, f"unknown argument of sokoban_sandbox or its game {game!r}{hint}"))
        if unknown:
            return problems
        try:
            gem_envs.make(game, **level).close()
        except Exception as exc:  # the game's own message names the argument
            text = str(exc).removeprefix(f"{game}: ")
            key = text.split(":", 1)[0]
            problems.append((key if key in level else "game_env_id", f"{game}: {text}"))
        return problems

    # ------------------------------------------------------------------ GEM API

    def reset(self, seed: int | None = None) -> tuple[str, dict[str, Any]]:
        with self._lock:
            self._ensure_started()
            reply = self._request({"op": "reset", "seed": seed})
        self.render_cache = reply["observation"]
        return reply["observation"], reply["info"]

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        with self._lock:
            if self.sandbox is None:
                raise SandboxEnvError(f"{self._where()}: step() before reset()")
            reply = self._request({"op": "step", "action": str(action)})
        self.render_cache = reply["observation"]
        return (
            reply["observation"],
            float(reply["reward"]),
            bool(reply["terminated"]),
            bool(reply["truncated"]),
            reply["info"],
        )

    def render(self) -> str:
        return self.render_cache

    def close(self) -> None:
        """Stop the sandbox (one attempt, errors swallowed: a dead sandbox or admin must not block shutdown).
        Does not wait for a call in flight: stopping its sandbox (also one still starting) ends that call."""
        if self._closed:
            return
        self._closed = True
        if self._link is not None:
            self._link.close()
        sandbox, self.sandbox = self.sandbox or self._starting, None
        if sandbox is not None:
            _stop_quietly(sandbox)

    def healthy(self) -> bool:
        """Worth reusing after a failed or slow call: the sandbox is alive (or still starting, known to the
        admin) and, when no call is in flight, the game server answers a ping."""
        if self._closed:
            return False
        if not self._lock.acquire(blocking=False):  # a call is in flight: ask the admin about its sandbox
            return _sandbox_alive(self.sandbox or self._starting)
        try:
            if self.sandbox is None:
                return False
            self._request({"op": "ping"})
            return True
        except (SandboxEnvError, EnvUnavailableError):
            return False
        finally:
            self._lock.release()

    # ------------------------------------------------------------------ internals

    def _where(self) -> str:
        return f"sokoban_sandbox (sandbox {self.sandbox_id or '-'} at {self.base_url})"

    def _ensure_started(self) -> None:
        if self._closed:
            raise SandboxEnvError(f"{self._where()}: the env is closed")
        if self.sandbox is not None:
            return
        try:
            from rock.sdk.sandbox.client import Sandbox
            from rock.sdk.sandbox.config import SandboxConfig
        except ImportError as exc:
            raise ImportError(
                "env_type sokoban_sandbox needs the rock-sdk package: `pip install roll-core[rock]`"
            ) from exc
        config = SandboxConfig(
            base_url=self.base_url,
            image=self.image,
            memory=self.memory,
            cpus=self.cpus,
            auto_clear_seconds=self.auto_clear_seconds,
            startup_timeout=self.startup_timeout,
        )
        sandbox = self._starting = Sandbox(config)
        try:
            self._retry("start", sandbox.start, self.startup_timeout + self.request_timeout)
            self.sandbox_id = sandbox.sandbox_id
            if self._closed:  # closed while starting: close() could not see the id yet
                raise SandboxEnvError(f"{self._where()}: the env was closed while its sandbox started")
            self.sandbox = sandbox
            self._start_server()
        except BaseException:
            self.sandbox = None
            if self._link is not None:
                self._link.close()
            _stop_quietly(sandbox)
            raise
        finally:
            self._starting = None

    def _start_server(self) -> None:
        from rock.sdk.sandbox.request import CreateBashSessionRequest

        for session in ("default", "server_session"):
            request = CreateBashSessionRequest(session=session, startup_timeout=30.0)
            self._retry("create_session", lambda r=request: self.sandbox.create_session(r))
        workdir = f"/tmp/roll-sokoban-{uuid.uuid4().hex[:12]}"
        port_file, log = f"{workdir}/port", f"{workdir}/server.log"
        kwargs = json.dumps({**self.level}, ensure_ascii=True)
        server = (
            f"mkdir -p {workdir} && {shlex.quote(self.python)} -m {SERVER_MODULE} "
            f"--env-id {shlex.quote(self.game_env_id)} --env-kwargs {shlex.quote(kwargs)} "
            f"--port-file {port_file} > {log} 2>&1 &"
        )
        self._run("start the game server", server, "server_session")
        polls = max(1, int(self.server_start_timeout / 0.05))
        wait = f"for _ in $(seq 1 {polls}); do [ -s {port_file} ] && break; sleep 0.05; done; cat {port_file}"
        obs = self._run("wait for the game server", wait, "default", self.server_start_timeout + 10)
        if obs.exit_code != 0 or not obs.output.strip().isdigit():
            tail = self._run("read the server log", f"tail -c 2000 {log}", "default").output
            raise SandboxEnvError(
                f"{self._where()}: the game server did not start within server_start_timeout="
                f"{self.server_start_timeout:g} s; its log: {tail.strip() or '(empty)'}"
            )
        self._link = GameLink(self.sandbox, int(obs.output.strip()))

    def _request(self, payload: dict[str, Any]) -> dict[str, Any]:
        self._n += 1
        line = json.dumps({"n": self._n, **payload}, ensure_ascii=True)
        prefix = json.dumps({"n": self._n})[:-1] + ","  # '{"n": 7,' — how the server's reply to n starts
        text = self._exchange(payload["op"], line, prefix)
        try:
            reply = json.loads(text)
        except ValueError as exc:
            raise SandboxEnvError(
                f"{self._where()}: unreadable reply to {payload['op']}: {text[-500:]!r}"
            ) from exc
        if "error" in reply:
            raise SandboxEnvError(f"{self._where()}: {payload['op']} failed in the game: {reply['error']}")
        return reply

    def _exchange(self, what: str, line: str, prefix: str) -> str:
        """One request over the game link; a broken stream is reopened and the same line resent (the server
        answers a repeated `n` from its cache) while the admin is unreachable, up to `retry_timeout`."""
        from rock.retry import delays_within
        from rock.sdk.sandbox.portforward import PortForwardError

        link = self._link
        assert link is not None  # set by _start_server, which every caller has run
        delays = delays_within(self.retry_timeout)
        while True:
            try:
                if not link.is_open:
                    link.open(self.request_timeout)
                return link.exchange(line, prefix, self.request_timeout)
            except (GameServerClosed, PortForwardError) as exc:
                link.close()
                if isinstance(exc, GameServerClosed) or exc.code in _FINAL_CODES:
                    raise SandboxEnvError(
                        f"{self._where()}: the game server is gone ({what}): {exc}"
                    ) from exc
                last: BaseException = exc  # the stream broke (admin restarted, proxy dropped it): reopen
            except TimeoutError as exc:
                if link.is_open:  # the server took longer than request_timeout to answer
                    link.close()
                    raise SandboxEnvError(f"{self._where()}: {what} did not answer: {exc}") from exc
                last = exc  # opening the stream timed out: the admin is not answering
            except OSError as exc:  # connection refused or reset: the admin is not there (yet)
                link.close()
                last = exc
            self._back_off(delays, what, last)

    def _run(self, what: str, command: str, session: str, timeout: float | None = None) -> Any:
        """One command in a session; a non-zero exit comes back in the observation (check="silent")."""
        from rock.sdk.sandbox.request import BashAction

        limit = timeout or self.request_timeout
        action = BashAction(command=command, session=session, timeout=limit, check="silent")
        return self._retry(what, lambda: self.sandbox.run_in_session(action), limit + 5)

    def _retry(self, what: str, call, timeout: float | None = None) -> Any:
        """`call()` (a coroutine factory) on the shared loop; retried with backoff while the admin is
        unreachable, up to `retry_timeout`. Other failures mean the sandbox is broken: SandboxEnvError."""
        from rock.retry import delays_within
        from rock.sdk.sandbox.client import SandboxError, SandboxUnreachableError

        delays = delays_within(self.retry_timeout)
        while True:
            try:
                return run_sync(call(), timeout or self.request_timeout)
            except SandboxError as exc:
                if not isinstance(exc, SandboxUnreachableError):
                    raise SandboxEnvError(f"{self._where()}: {what} failed: {exc}") from exc
                self._back_off(delays, what, exc)
            except TimeoutError as exc:
                raise SandboxEnvError(f"{self._where()}: {what} did not answer: {exc}") from exc

    def _back_off(self, delays: Iterator[float], what: str, last: BaseException) -> None:
        """Sleep the next delay before a retry, or give up naming the URL once `retry_timeout` is spent."""
        delay = next(delays, None)
        if delay is None:
            raise EnvUnavailableError(
                f"sokoban_sandbox: the ROCK admin at {self.base_url} stayed unreachable for "
                f"retry_timeout={self.retry_timeout:g} s ({what}); check env_config.base_url and "
                f"that the admin is running. Last error: {last}"
            ) from last
        time.sleep(delay)


def _sandbox_alive(sandbox: Any) -> bool:
    """The admin knows the sandbox as starting or running (one status call, 10 s at most)."""
    if sandbox is None or sandbox.sandbox_id is None:
        return False
    try:
        status = run_sync(sandbox.get_status(include_all_states=True), timeout=10)
    except Exception:  # no answer or an error: not known to be alive
        return False
    return status.state in ("pending", "running") and not status.failure_reason


def _stop_quietly(sandbox: Any) -> None:
    """Stop a sandbox in one attempt; failures are swallowed (the admin's idle auto-stop reclaims it)."""
    with contextlib.suppress(Exception):
        run_sync(sandbox.close(), timeout=10)
