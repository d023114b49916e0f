"""Admin settings: defaults that work on a fresh machine, an optional YAML file, environment variables.

Precedence: built-in defaults < YAML file (`--config FILE` or `$ROCK_ADMIN_CONFIG`) < `ROCK_ADMIN_*` env vars
< command-line flags, as pydantic-settings sources. Each field's check sits next to it and raises the problem;
`load` turns pydantic's errors into one `AdminConfigError` naming each field. Unknown YAML keys are an error
naming the key.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from rock_admin.errors import AdminConfigError

RUNTIMES = ("process", "docker")


_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:ib|i|b)?\s*$", re.IGNORECASE)


def _size_bytes(value: str | int | float) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a size like '8g' or '512m', got {value!r}")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError(f"must be positive, got {value!r}")
        return int(value)
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"expected a size like '8g', '512m' or a number of bytes, got {value!r}")
    number = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if number <= 0:
        raise ValueError(f"must be positive, got {value!r}")
    return int(number)


def parse_size(value: str | int | float, field_name: str = "memory") -> int:
    """`8g`, `512m`, `1.5G`, `1024Ki`... or a number of bytes → bytes. Raises `AdminConfigError` naming the field."""
    try:
        return _size_bytes(value)
    except ValueError as exc:
        raise AdminConfigError(f"{field_name}: {exc}") from None


def host_pid_max() -> int:
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read())


def default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "rock-admin")


def _one_of(*choices: str) -> AfterValidator:
    expected = f"{', '.join(choices[:-1])} or {choices[-1]}"

    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"expected {expected}, got {value!r}")
        return value

    return AfterValidator(check)


def _holds(predicate: Callable[[Any], bool], problem: str) -> AfterValidator:
    def check(value: Any) -> Any:
        if not predicate(value):
            raise ValueError(f"{problem}, got {value!r}")
        return value

    return AfterValidator(check)


def _runtime(value: str) -> str:
    if value == "ray":
        raise ValueError("'ray' is a scheduler; use scheduler: ray (runtime: process on each node)")
    if value not in RUNTIMES:
        raise ValueError(f"unknown runtime {value!r} (available: {', '.join(RUNTIMES)})")
    if value == "docker" and importlib.util.find_spec("docker") is None:
        raise ValueError("'docker' needs the docker SDK: pip install 'rock-admin[docker]'")
    return value


def _store(value: str) -> str:
    if value not in ("sqlite", "redis"):
        raise ValueError(f"unknown store {value!r} (available: sqlite, redis)")
    return value


def _write_url(value: str) -> str:
    if value and not re.match(r"^https?://[^/\s]+/?$", value):
        raise ValueError(f"expected http(s)://host:port, got {value!r}")
    return value.rstrip("/")


def _comma_list(value: Any) -> Any:
    """An environment variable holds a list as `a,b,c`."""
    return [x for x in value.split(",") if x] if isinstance(value, str) else value


def _max_memory(value: str | int | float) -> str | int | float:
    _size_bytes(value)
    return value


_Seconds = Annotated[float, _holds(lambda v: v >= 0, "must be a positive number of seconds")]
_Keys = Annotated[list[str], NoDecode, BeforeValidator(_comma_list)]


class AdminConfig(BaseSettings):
    """Every setting of `rock-admin serve`. The YAML file uses the same names (flat keys)."""

    model_config = SettingsConfigDict(env_prefix="ROCK_ADMIN_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = 8080
    #: Where the SQLite store, the image store, the zygote socket and per-sandbox dirs live.
    state_dir: Annotated[str, AfterValidator(lambda v: os.path.abspath(os.path.expanduser(v)))] = Field(
        default_factory=default_state_dir
    )
    #: `process` (built in) or `docker` (containers through the Docker Engine API; the `docker` extra).
    runtime: Annotated[str, AfterValidator(_runtime)] = "process"
    #: docker: the engine's API (`unix:///path.sock`, `tcp://host:port`; default `$DOCKER_HOST`, else Docker's socket).
    docker_host: str = ""
    #: docker: `none` (no network inside; the rocklet on a Unix socket) or `bridge` (a port on 127.0.0.1).
    docker_network: Annotated[str, _one_of("none", "bridge")] = "none"
    #: docker: engine calls at once (creates, starts, stops run in this many threads).
    docker_concurrency: Annotated[int, _holds(lambda v: v >= 1, "must be at least 1")] = 8
    #: docker: `fork` (a preloaded rocklet forked into each started container), `exec` (the rocklet is the
    #: container's command, a fresh interpreter) or `auto` (fork where the admin is root on the engine's host).
    docker_rocklet: Annotated[str, _one_of("auto", "fork", "exec")] = "auto"
    #: `local` (the runtime runs on this host) or `ray` (sandboxes placed on a Ray cluster, `runtime` on each node).
    scheduler: Annotated[str, _one_of("local", "ray")] = "local"
    #: Ray: the cluster to join as a driver (`host:port` of the GCS, `auto`, or `ray://host:port`).
    ray_address: str = "auto"
    #: Ray: namespace of the node agents and placement groups (admins sharing one namespace share agents).
    ray_namespace: str = "rock-admin"
    #: Ray: each node's runtime state dir is `<this>/<node id>` on that node (default `<state_dir>/ray-nodes`).
    ray_node_state_dir: str = ""
    #: Ray: seconds a sandbox may wait for free cpus/memory on the cluster (default: `startup_timeout`).
    ray_placement_timeout: Annotated[
        float, _holds(lambda v: v >= 0, "must be >= 0 (0 = startup_timeout)")
    ] = 0.0
    #: Ray: `auto` (a node's Unix socket when it is on this host, else TCP) or `url` (always TCP).
    ray_dial: Annotated[str, _one_of("auto", "url")] = "auto"
    #: `sqlite` (one host; WAL, shared by the roles there) or `redis` (several hosts; see `redis_url`).
    store: Annotated[str, AfterValidator(_store)] = "sqlite"
    #: `all` (lifecycle + data plane), `write` (lifecycle, scheduling; serves data-plane calls too) or `read`
    #: (data plane only: no runtime; lifecycle calls are forwarded to `write_url`).
    role: Annotated[str, _one_of("all", "read", "write")] = "all"
    #: Where a read node forwards lifecycle calls (`http://host:port` of a write or all node).
    write_url: Annotated[str, AfterValidator(_write_url)] = ""
    #: The Redis server of `store: redis`.
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Prefix of every Redis key (admins of one cluster share it; another cluster uses another).
    redis_prefix: Annotated[
        str, _holds(lambda v: re.match(r"^[A-Za-z0-9_.:-]+$", v), "use letters, digits, '_', '.', ':', '-'")
    ] = "rock"
    #: `auto` (namespaces when root, else none), `namespaces`, `none` (plain processes, no isolation).
    isolation: Annotated[str, _one_of("auto", "namespaces", "none")] = "auto"
    #: Sandbox root is an unprivileged host uid range in a user namespace (`on`; `auto`: on where the kernel can
    #: id-map the root's layers, or with docker where the engine maps per container (Podman), else without,
    #: with a warning; `off`: host root).
    userns: Annotated[str, _one_of("auto", "on", "off")] = "auto"
    #: First host uid (= gid) of those ranges: sandbox k gets 65536 ids from userns_base + k * 65536.
    userns_base: Annotated[int, _holds(lambda v: 1 <= v <= 2**31 - 65536, "expected 1 .. 2**31 - 65536")] = (
        100_000
    )
    #: API keys; when any is set, every request needs one (`X-API-Key` or `Authorization: Bearer`).
    api_keys: _Keys = []
    #: The secret rocklet tokens are derived from (0600; made when absent). Default `<state_dir>/rocklet-token.key`;
    #: every node of a cluster must read the same secret.
    token_key_file: str = ""
    #: Admin keys: valid keys that see (list, drive, stop, delete) every sandbox; any other key sees only the
    #: sandboxes it started (with the same `X-User-Id` / `X-Namespace`), and the others do not exist for it.
    admin_keys: _Keys = []
    #: Idle seconds before a sandbox stops when the request does not say (upstream: 30 min).
    auto_clear_seconds: float = 1800.0
    #: Seconds a sandbox may take to answer before its start fails (upstream default 180).
    startup_timeout: float = 180.0
    #: How often the idle scan runs.
    auto_stop_interval: float = 1.0
    #: Seconds the admin waits for a rocklet's answer to a call with no timeout of its own (one with a timeout,
    #: a command's: that timeout + 30 s).
    rocklet_call_timeout: Annotated[
        float, _holds(lambda v: v > 0, "must be a positive number of seconds")
    ] = 1800.0
    #: A running sandbox whose rocklet has not answered `/is_alive` (2 s per probe) for this long is failed and
    #: stopped: frozen (SIGSTOP, ptrace) or hung. 0: never.
    health_timeout: _Seconds = 30.0
    #: How often sandboxes with recent activity (or a failed probe) are probed; idle ones are probed only by
    #: `get_status` / `is_alive`. 0: only then.
    health_interval: _Seconds = 10.0
    max_cpus: float = 16.0
    max_memory: Annotated[str | int | float, AfterValidator(_max_memory)] = "64g"
    #: Most processes (threads count) per sandbox: a fork bomb stops here.
    pids_max: Annotated[
        int, _holds(lambda v: v >= 8, "a sandbox needs at least 8 (init, rocklet, a shell)")
    ] = 256
    #: Most processes all sandboxes together may hold (the sum of their `pids_max`): a start beyond it is refused.
    #: 0: the host's `kernel.pid_max` minus `pids_reserve`; -1: no budget.
    pids_budget: Annotated[int, _holds(lambda v: v >= -1, "expected -1 (none), 0 (derived) or a count")] = 0
    #: Pids kept for the host when `pids_budget` is derived.
    pids_reserve: Annotated[int, _holds(lambda v: v >= 0, "must be >= 0")] = 4096
    #: GEM: `sandbox` (one sandbox per env, upstream) or `pooled` (many envs per sandbox).
    gem_mode: Annotated[str, _one_of("sandbox", "pooled")] = "sandbox"
    gem_image: str = "python:3.11"
    gem_pool_size: int = 256
    #: Extra host paths hidden from sandboxes (the host's /tmp, /run, /home, ... and the state dir always are).
    hide_paths: _Keys = []
    log_level: str = "info"
    #: On shutdown, stop every sandbox and the zygote too (default: leave them for the next admin to adopt).
    stop_on_exit: bool = False

    @model_validator(mode="after")
    def _cluster_and_paths(self) -> AdminConfig:
        """The checks that read two settings, and `token_key_file`'s default under `state_dir`."""
        if self.role == "read" and not self.write_url:
            raise ValueError("write_url: a read node needs the write node's URL (e.g. http://127.0.0.1:8080)")
        if self.store == "redis" and not re.match(r"^(redis|rediss|unix)://", self.redis_url):
            raise ValueError(f"redis_url: expected redis://host:port/db, got {self.redis_url!r}")
        self.token_key_file = os.path.abspath(
            os.path.expanduser(self.token_key_file or os.path.join(self.state_dir, "rocklet-token.key"))
        )
        return self

    def runtime_options(self) -> dict[str, Any]:
        """The settings of `runtime` (on this host, or on every Ray node), as its constructor takes them."""
        options: dict[str, Any] = {
            "isolation": self.isolation,
            "hide_paths": list(self.hide_paths),
            "userns": self.userns,
            "userns_base": self.userns_base,
        }
        if self.runtime == "docker":
            options.update(
                docker_host=self.docker_host,
                network=self.docker_network,
                concurrency=self.docker_concurrency,
                rocklet=self.docker_rocklet,
            )
        return options

    @classmethod
    def load(
        cls, path: str | None = None, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> AdminConfig:
        """Flags (`overrides`; None = not given) > `ROCK_ADMIN_*` in `env` (default the process's) > YAML > defaults."""
        env = os.environ if env is None else env
        path = path or env.get("ROCK_ADMIN_CONFIG")
        flags = {k: v for k, v in overrides.items() if v is not None}
        sources = (InitSettingsSource(cls, flags), _Environment(cls, env))
        if path:
            sources += (_YamlFile(cls, path),)
        try:
            return cls(_build_sources=(sources, flags))
        except ValidationError as exc:
            raise AdminConfigError("; ".join(_problem(error, path) for error in exc.errors())) from None


class _Environment(EnvSettingsSource):
    """`ROCK_ADMIN_*` read from a given mapping: the process's environment, or a test's own."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): v for k, v in self._environ.items()}


class _YamlFile(YamlConfigSettingsSource):
    """The `--config` file: unlike pydantic-settings' default, a named file must exist and hold a mapping."""

    def __init__(self, settings_cls: type[BaseSettings], path: str) -> None:
        Path(path).open().close()  # the base source skips a missing file silently
        super().__init__(settings_cls, yaml_file=path)

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        data = super()._read_file(file_path)
        if not isinstance(data, dict):
            raise AdminConfigError(f"{file_path}: expected a mapping of settings")
        return data


def _problem(error: Any, path: str | None) -> str:
    """One pydantic error as `field: problem, got value` (a check's own message as it wrote it)."""
    field = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        known = ", ".join(sorted(AdminConfig.model_fields))
        return f"{path or 'flags'}: unknown setting {field!r} (known: {known})"
    if error["type"] == "value_error":
        problem = str(error["ctx"]["error"])
    else:
        problem = f"{error['msg']}, got {error['input']!r}"
    return f"{field}: {problem}" if field else problem
