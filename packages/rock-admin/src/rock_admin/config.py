"""Admin settings: defaults that work on a fresh machine, an optional YAML file, environment variables.

Precedence: built-in defaults < YAML file (`--config FILE` or `$ROCK_ADMIN_CONFIG`) < `ROCK_ADMIN_*` env vars
< command-line flags. Unknown YAML keys are an error naming the key.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from rock_admin.errors import AdminConfigError

RUNTIMES = ("process", "docker")


_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:ib|i|b)?\s*$", re.IGNORECASE)


def parse_size(value: str | int | float, field_name: str = "memory") -> int:
    """`8g`, `512m`, `1.5G`, `1024Ki`... or a number of bytes → bytes. Raises `AdminConfigError` naming the field."""
    if isinstance(value, bool):
        raise AdminConfigError(f"{field_name}: expected a size like '8g' or '512m', got {value!r}")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise AdminConfigError(f"{field_name}: must be positive, got {value!r}")
        return int(value)
    match = _SIZE.match(str(value))
    if not match:
        raise AdminConfigError(
            f"{field_name}: expected a size like '8g', '512m' or a number of bytes, got {value!r}"
        )
    number = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if number <= 0:
        raise AdminConfigError(f"{field_name}: must be positive, got {value!r}")
    return int(number)


def host_pid_max() -> int:
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read())


def default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "rock-admin")


@dataclass
class AdminConfig:
    """Every setting of `rock-admin serve`. The YAML file uses the same names (flat keys)."""

    host: str = "127.0.0.1"
    port: int = 8080
    #: Where the SQLite store, the image store, the zygote socket and per-sandbox dirs live.
    state_dir: str = field(default_factory=default_state_dir)
    #: `process` (built in) or `docker` (containers through the Docker Engine API; the `docker` extra).
    runtime: str = "process"
    #: docker: the engine's API (`unix:///path.sock`, `tcp://host:port`; default `$DOCKER_HOST`, else Docker's socket).
    docker_host: str = ""
    #: docker: `none` (no network inside; the rocklet on a Unix socket) or `bridge` (a port on 127.0.0.1).
    docker_network: str = "none"
    #: docker: engine calls at once (creates, starts, stops run in this many threads).
    docker_concurrency: int = 8
    #: `local` (the runtime runs on this host) or `ray` (sandboxes placed on a Ray cluster, `runtime` on each node).
    scheduler: str = "local"
    #: Ray: the cluster to join as a driver (`host:port` of the GCS, `auto`, or `ray://host:port`).
    ray_address: str = "auto"
    #: Ray: namespace of the node agents and placement groups (admins sharing one namespace share agents).
    ray_namespace: str = "rock-admin"
    #: Ray: each node's runtime state dir is `<this>/<node id>` on that node (default `<state_dir>/ray-nodes`).
    ray_node_state_dir: str = ""
    #: Ray: seconds a sandbox may wait for free cpus/memory on the cluster (default: `startup_timeout`).
    ray_placement_timeout: float = 0.0
    #: Ray: `auto` (a node's Unix socket when it is on this host, else TCP) or `url` (always TCP).
    ray_dial: str = "auto"
    #: `sqlite` (one host; WAL, shared by the roles there) or `redis` (several hosts; see `redis_url`).
    store: str = "sqlite"
    #: `all` (lifecycle + data plane), `write` (lifecycle, scheduling; serves data-plane calls too) or `read`
    #: (data plane only: no runtime; lifecycle calls are forwarded to `write_url`).
    role: str = "all"
    #: Where a read node forwards lifecycle calls (`http://host:port` of a write or all node).
    write_url: str = ""
    #: The Redis server of `store: redis`.
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Prefix of every Redis key (admins of one cluster share it; another cluster uses another).
    redis_prefix: str = "rock"
    #: `auto` (namespaces when root, else none), `namespaces`, `none` (plain processes, no isolation).
    isolation: str = "auto"
    #: Process runtime: sandbox root is an unprivileged host uid range in a user namespace (`on`; `auto`: on
    #: where the kernel can id-map the root's layers, else without, with a warning; `off`: host root).
    userns: str = "auto"
    #: First host uid (= gid) of those ranges: sandbox k gets 65536 ids from userns_base + k * 65536.
    userns_base: int = 100_000
    #: API keys; when any is set, every request needs one (`X-API-Key` or `Authorization: Bearer`).
    api_keys: list[str] = field(default_factory=list)
    #: The secret rocklet tokens are derived from (0600; made when absent). Default `<state_dir>/rocklet-token.key`;
    #: every node of a cluster must read the same secret.
    token_key_file: str = ""
    #: Admin keys: valid keys that see (list, drive, stop, delete) every sandbox; any other key sees only the
    #: sandboxes it started (with the same `X-User-Id` / `X-Namespace`), and the others do not exist for it.
    admin_keys: list[str] = field(default_factory=list)
    #: Idle seconds before a sandbox stops when the request does not say (upstream: 30 min).
    auto_clear_seconds: float = 1800.0
    #: Seconds a sandbox may take to answer before its start fails (upstream default 180).
    startup_timeout: float = 180.0
    #: How often the idle scan runs.
    auto_stop_interval: float = 1.0
    #: Seconds the admin waits for a rocklet's answer to a call with no timeout of its own (one with a timeout,
    #: a command's: that timeout + 30 s).
    rocklet_call_timeout: float = 1800.0
    #: A running sandbox whose rocklet has not answered `/is_alive` (2 s per probe) for this long is failed and
    #: stopped: frozen (SIGSTOP, ptrace) or hung. 0: never.
    health_timeout: float = 30.0
    #: How often sandboxes with recent activity (or a failed probe) are probed; idle ones are probed only by
    #: `get_status` / `is_alive`. 0: only then.
    health_interval: float = 10.0
    max_cpus: float = 16.0
    max_memory: str = "64g"
    #: Most processes (threads count) per sandbox: a fork bomb stops here.
    pids_max: int = 256
    #: Most processes all sandboxes together may hold (the sum of their `pids_max`): a start beyond it is refused.
    #: 0: the host's `kernel.pid_max` minus `pids_reserve`; -1: no budget.
    pids_budget: int = 0
    #: Pids kept for the host when `pids_budget` is derived.
    pids_reserve: int = 4096
    #: GEM: `sandbox` (one sandbox per env, upstream) or `pooled` (many envs per sandbox).
    gem_mode: str = "sandbox"
    gem_image: str = "python:3.11"
    gem_pool_size: int = 256
    #: Extra host paths hidden from sandboxes (the host's /tmp, /run, /home, ... and the state dir always are).
    hide_paths: list[str] = field(default_factory=list)
    log_level: str = "info"
    #: On shutdown, stop every sandbox and the zygote too (default: leave them for the next admin to adopt).
    stop_on_exit: bool = False

    @classmethod
    def load(
        cls, path: str | None = None, env: dict[str, str] | None = None, **overrides: Any
    ) -> AdminConfig:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        path = path or env.get("ROCK_ADMIN_CONFIG")
        known = {f.name: f for f in fields(cls)}
        if path:
            data = yaml.safe_load(Path(path).read_text()) or {}
            if not isinstance(data, dict):
                raise AdminConfigError(f"{path}: expected a mapping of settings")
            for key, value in data.items():
                if key not in known:
                    raise AdminConfigError(
                        f"{path}: unknown setting {key!r} (known: {', '.join(sorted(known))})"
                    )
                values[key] = value
        for name, f in known.items():
            raw = env.get(f"ROCK_ADMIN_{name.upper()}")
            if raw is None:
                continue
            default = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
            if isinstance(default, list):
                values[name] = [x for x in raw.split(",") if x]
            elif isinstance(default, bool):
                values[name] = raw.lower() in ("1", "true", "yes")
            elif isinstance(default, (int, float)):
                values[name] = type(default)(raw)
            else:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        config = cls(**values)
        config.validate()
        return config

    def _validate_cluster(self) -> None:
        """`store`, `role`, `write_url`, `redis_url`, `redis_prefix`."""
        if self.store not in ("sqlite", "redis"):
            raise AdminConfigError(f"store: unknown store {self.store!r} (available: sqlite, redis)")
        if self.role not in ("all", "read", "write"):
            raise AdminConfigError(f"role: expected all, read or write, got {self.role!r}")
        if self.role == "read" and not self.write_url:
            raise AdminConfigError(
                "write_url: a read node needs the write node's URL (e.g. http://127.0.0.1:8080)"
            )
        if self.write_url and not re.match(r"^https?://[^/\s]+/?$", self.write_url):
            raise AdminConfigError(f"write_url: expected http(s)://host:port, got {self.write_url!r}")
        self.write_url = self.write_url.rstrip("/")
        if self.store == "redis" and not re.match(r"^(redis|rediss|unix)://", self.redis_url):
            raise AdminConfigError(f"redis_url: expected redis://host:port/db, got {self.redis_url!r}")
        if not re.match(r"^[A-Za-z0-9_.:-]+$", self.redis_prefix):
            raise AdminConfigError(
                f"redis_prefix: use letters, digits, '_', '.', ':', '-', got {self.redis_prefix!r}"
            )

    def _validate_docker(self) -> None:
        if self.docker_network not in ("none", "bridge"):
            raise AdminConfigError(f"docker_network: expected none or bridge, got {self.docker_network!r}")
        if self.docker_concurrency < 1:
            raise AdminConfigError(f"docker_concurrency: must be at least 1, got {self.docker_concurrency!r}")
        if importlib.util.find_spec("docker") is None:
            raise AdminConfigError("runtime: 'docker' needs the docker SDK: pip install 'rock-admin[docker]'")

    def validate(self) -> None:
        if self.runtime == "ray":
            raise AdminConfigError(
                "runtime: 'ray' is a scheduler; use scheduler: ray (runtime: process on each node)"
            )
        if self.runtime not in RUNTIMES:
            raise AdminConfigError(
                f"runtime: unknown runtime {self.runtime!r} (available: {', '.join(RUNTIMES)})"
            )
        if self.runtime == "docker":
            self._validate_docker()
        self._validate_cluster()
        if self.scheduler not in ("local", "ray"):
            raise AdminConfigError(f"scheduler: expected local or ray, got {self.scheduler!r}")
        if self.ray_dial not in ("auto", "url"):
            raise AdminConfigError(f"ray_dial: expected auto or url, got {self.ray_dial!r}")
        if self.ray_placement_timeout < 0:
            raise AdminConfigError(
                f"ray_placement_timeout: must be >= 0 (0 = startup_timeout), got {self.ray_placement_timeout!r}"
            )
        if self.isolation not in ("auto", "namespaces", "none"):
            raise AdminConfigError(f"isolation: expected auto, namespaces or none, got {self.isolation!r}")
        if self.userns not in ("auto", "on", "off"):
            raise AdminConfigError(f"userns: expected auto, on or off, got {self.userns!r}")
        if not 1 <= self.userns_base <= 2**31 - 65536:
            raise AdminConfigError(f"userns_base: expected 1 .. 2**31 - 65536, got {self.userns_base!r}")
        if self.gem_mode not in ("sandbox", "pooled"):
            raise AdminConfigError(f"gem_mode: expected sandbox or pooled, got {self.gem_mode!r}")
        parse_size(self.max_memory, "max_memory")
        for name in ("rocklet_call_timeout", "health_timeout", "health_interval"):
            value = getattr(self, name)
            if not (value >= 0) or (name == "rocklet_call_timeout" and not value > 0):
                raise AdminConfigError(f"{name}: must be a positive number of seconds, got {value!r}")
        if self.pids_max < 8:
            raise AdminConfigError(
                f"pids_max: a sandbox needs at least 8 (init, rocklet, a shell), got {self.pids_max!r}"
            )
        if self.pids_budget < -1 or self.pids_reserve < 0:
            raise AdminConfigError(
                f"pids_budget: expected -1 (none), 0 (derived) or a count, and pids_reserve >= 0, "
                f"got {self.pids_budget!r}, {self.pids_reserve!r}"
            )
        self.state_dir = os.path.abspath(os.path.expanduser(self.state_dir))
        self.token_key_file = os.path.abspath(
            os.path.expanduser(self.token_key_file or os.path.join(self.state_dir, "rocklet-token.key"))
        )
