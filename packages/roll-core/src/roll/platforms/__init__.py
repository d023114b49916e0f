"""Platforms: device type, visibility env var, collective backend, Ray resource key, dtype quirks.

cpu and cuda are built in; plugins add more through the entry-point group `roll.platforms`
(e.g. roll-ascend registers `npu`). `current_platform()` picks the first available one;
`select_platform(name)` honours the config's `platform` key.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import metadata
from typing import Any, ClassVar

from roll.errors import PlatformUnavailable

ENTRY_POINT_GROUP = "roll.platforms"


@dataclass(frozen=True)
class Platform:
    """What the rest of roll needs to know about a device family."""

    name: ClassVar[str] = "base"
    device_name: ClassVar[str] = ""
    device_type: ClassVar[str] = "cpu"  # torch device type
    dispatch_key: ClassVar[str] = "CPU"
    ray_device_key: ClassVar[str] = "CPU"
    device_control_env_var: ClassVar[str | None] = None
    ray_experimental_noset: ClassVar[str | None] = None
    communication_backend: ClassVar[str] = "gloo"
    priority: ClassVar[int] = 0  # higher wins when several are available

    @classmethod
    def is_available(cls) -> bool:
        return False

    @classmethod
    def device_count(cls) -> int:
        return 0

    @classmethod
    def supported_dtypes(cls) -> tuple[str, ...]:
        return ("fp32", "bf16")

    @classmethod
    def unavailable_reason(cls) -> str:
        """One line on why this platform cannot run here; plugins say what to install or source."""
        return f"no {cls.device_name or cls.name} device is visible on this machine"

    @classmethod
    def get_custom_env_vars(cls) -> dict[str, str]:
        return {}

    @classmethod
    def check_role(cls, role_name: str, role: Any, check_environment: bool = True) -> list[tuple[str, str]]:
        """Plugin hook, called by config validation for every role (a `WorkerConfig`): a platform may adjust
        the role's `strategy_args.strategy_config` in place for its backends and returns (key path, problem)
        pairs for what it cannot run, each problem naming the fix. `check_environment=False` skips checks of
        what this machine has installed. Built-ins accept everything."""
        return []

    @classmethod
    def describe(cls) -> str:
        return f"{cls.name} ({cls.device_count()} devices, backend {cls.communication_backend})"


class CpuPlatform(Platform):
    name = "cpu"
    device_name = "CPU"
    device_type = "cpu"
    priority = 0

    @classmethod
    def is_available(cls) -> bool:
        return True

    @classmethod
    def supported_dtypes(cls) -> tuple[str, ...]:
        return ("fp32", "bf16")


class CudaPlatform(Platform):
    name = "cuda"
    device_name = "NVIDIA"
    device_type = "cuda"
    dispatch_key = "CUDA"
    ray_device_key = "GPU"
    device_control_env_var = "CUDA_VISIBLE_DEVICES"
    ray_experimental_noset = "RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"
    communication_backend = "nccl"
    priority = 10

    @classmethod
    def is_available(cls) -> bool:
        import torch

        return torch.cuda.is_available()

    @classmethod
    def device_count(cls) -> int:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0

    @classmethod
    def supported_dtypes(cls) -> tuple[str, ...]:
        return ("fp32", "bf16", "fp16")

    @classmethod
    def get_custom_env_vars(cls) -> dict[str, str]:
        return {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True", "NCCL_CUMEM_ENABLE": "0"}


@functools.cache
def available_platforms() -> dict[str, type[Platform]]:
    """Built-ins plus every class registered under the `roll.platforms` entry-point group."""
    found: dict[str, type[Platform]] = {"cpu": CpuPlatform, "cuda": CudaPlatform}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            continue
        try:
            cls: Any = ep.load()
        except Exception as exc:  # a broken plugin must not break the built-ins
            import warnings

            warnings.warn(
                f"roll.platforms plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2
            )
            continue
        found[ep.name] = cls
    return found


def get_platform(name: str) -> type[Platform]:
    platforms = available_platforms()
    if name not in platforms:
        raise KeyError(
            f"unknown platform {name!r}; known: {', '.join(sorted(platforms))} "
            f"(plugins register under the {ENTRY_POINT_GROUP!r} entry-point group, e.g. roll-core[ascend])"
        )
    return platforms[name]


def current_platform() -> type[Platform]:
    """The available platform with the highest priority (cuda over cpu; plugins set their own)."""
    candidates = [p for p in available_platforms().values() if p.is_available()]
    return max(candidates, key=lambda p: p.priority)


def select_platform(name: str = "auto", require_available: bool = True) -> type[Platform]:
    """`auto`: `current_platform()`; a name: that platform (KeyError if unknown), which must be available here
    unless `require_available` is false (planning for another machine)."""
    if name == "auto":
        return current_platform()
    platform = get_platform(name)
    if require_available and not platform.is_available():
        raise PlatformUnavailable(f"{name!r} cannot run here: {platform.unavailable_reason()}")
    return platform
