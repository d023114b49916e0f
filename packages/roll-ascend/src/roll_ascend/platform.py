"""The `npu` platform: torch-npu's PrivateUse1 device, hccl, ASCEND_RT_VISIBLE_DEVICES, Ray resource NPU."""

from __future__ import annotations

from typing import Any

from roll.platforms import Platform
from roll_ascend import compat
from roll_ascend.runtime import probe

# Chips without bf16 (Ascend 910A, 310P): their device names start with these.
NO_BF16_CHIPS = ("Ascend910A", "Ascend910ProA", "Ascend310")


class NpuPlatform(Platform):
    name = "npu"
    device_name = "Ascend"
    device_type = "npu"
    dispatch_key = "PrivateUse1"
    ray_device_key = "NPU"
    device_control_env_var = "ASCEND_RT_VISIBLE_DEVICES"
    ray_experimental_noset = "RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES"
    communication_backend = "hccl"
    priority = 5  # over cpu; a machine with both CUDA and NPUs keeps cuda (10), as upstream ROLL probes

    @classmethod
    def is_available(cls) -> bool:
        return probe().ok and cls.device_count() > 0

    @classmethod
    def device_count(cls) -> int:
        if not probe().ok:
            return 0
        import torch

        return int(torch.npu.device_count())

    @classmethod
    def supported_dtypes(cls) -> tuple[str, ...]:
        return ("fp32", "bf16", "fp16") if cls.bf16_supported() else ("fp32", "fp16")

    @classmethod
    def bf16_supported(cls) -> bool:
        """bf16 per chip: torch-npu's own answer where it has one, else the chip name of device 0."""
        import torch

        if cls.device_count() == 0:
            return False
        check = getattr(torch.npu, "is_bf16_supported", None)
        if check is not None:
            return bool(check())
        return not str(torch.npu.get_device_name(0)).startswith(NO_BF16_CHIPS)

    @classmethod
    def memory_stats(cls, device: int = 0) -> dict[str, int]:
        import torch

        return {
            "allocated": int(torch.npu.memory_allocated(device)),
            "reserved": int(torch.npu.memory_reserved(device)),
        }

    @classmethod
    def empty_cache(cls) -> None:
        import torch

        torch.npu.empty_cache()

    @classmethod
    def unavailable_reason(cls) -> str:
        status = probe()
        if not status.ok:
            return status.reason
        return "torch_npu sees no NPU (check ASCEND_RT_VISIBLE_DEVICES and `npu-smi info`)"

    @classmethod
    def get_custom_env_vars(cls) -> dict[str, str]:
        # hccl's default 120 s connect timeout is shorter than loading a model on every rank
        return {"HCCL_CONNECT_TIMEOUT": "1800"}

    @classmethod
    def check_role(cls, role_name: str, role: Any, check_environment: bool = True) -> list[tuple[str, str]]:
        return compat.check_role(role_name, role, cls.supported_dtypes(), check_environment)
