"""The npu platform against the stand-in device layer of conftest.py (no kernels run, no NPU needed)."""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from roll.platforms import available_platforms, current_platform, get_platform
from roll_ascend import NpuPlatform, probe


def test_registered_through_the_core_entry_point_group():
    assert get_platform("npu") is NpuPlatform
    assert available_platforms()["npu"] is NpuPlatform


def test_without_torch_npu_one_line_and_cpu_fallback(no_torch_npu):
    no_torch_npu.setitem(sys.modules, "torch_npu", None)  # import fails as when the wheel is absent
    status = probe()
    assert not status.ok and "\n" not in status.reason
    assert status.reason.startswith("Ascend runtime not found: torch-npu is not installed")
    assert "set_env.sh" in status.reason and "CANN" in status.reason
    assert not NpuPlatform.is_available() and NpuPlatform.device_count() == 0
    assert current_platform().name == "cpu"


class _BrokenTorchNpu(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """torch_npu as a torch-npu wheel without CANN behaves: its import raises from a native library."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def find_spec(self, name, path=None, target=None):
        if name != "torch_npu":
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise self.exc


@pytest.mark.parametrize(
    "exc",
    [
        ImportError("libhccl.so: cannot open shared object file: No such file or directory"),
        OSError("libascendcl.so: cannot open shared object file"),
        RuntimeError(
            "Failed to load the backend extension: torch_npu.\nYou can disable extension auto-loading"
        ),
    ],
)
def test_any_import_failure_becomes_one_line(no_torch_npu, exc):
    no_torch_npu.delitem(sys.modules, "torch_npu", raising=False)
    no_torch_npu.setattr(sys, "meta_path", [_BrokenTorchNpu(exc), *sys.meta_path])
    reason = probe().reason
    assert reason.startswith(f"Ascend runtime not found: import torch_npu failed ({type(exc).__name__}: ")
    assert str(exc).splitlines()[0] in reason and "\n" not in reason and "set_env.sh" in reason
    assert current_platform().name == "cpu"


def test_auto_picks_npu_when_torch_npu_imports_and_devices_exist(fake_npu):
    platform = current_platform()
    assert platform is NpuPlatform
    assert (platform.device_type, platform.communication_backend, platform.ray_device_key) == (
        "npu",
        "hccl",
        "NPU",
    )
    assert platform.device_control_env_var == "ASCEND_RT_VISIBLE_DEVICES"
    assert platform.device_count() == 4 and "npu (4 devices, backend hccl)" in platform.describe()
    assert torch.device("npu:3").type == "npu"
    fake_npu.count = 0  # torch_npu imports but no device is visible
    assert current_platform().name == "cpu"


def test_bf16_per_chip(fake_npu):
    assert "bf16" in NpuPlatform.supported_dtypes()
    fake_npu.chip = "Ascend910A"
    assert NpuPlatform.supported_dtypes() == ("fp32", "fp16")


def test_memory_stats_and_cache_through_torch_npu(fake_npu):
    assert NpuPlatform.memory_stats(1) == {"allocated": 2048, "reserved": 8192}
    NpuPlatform.empty_cache()
    assert fake_npu.emptied == 1


# In a child process: DeepSpeed caches its accelerator process-wide, and the other suites need the CPU one.
DS_CHILD = """
import os, sys
sys.path.insert(0, sys.argv[1])
import conftest
conftest._install_device_layer()
conftest._NPU.count = 4
sys.modules["torch_npu"] = conftest.fake_torch_npu()
os.environ.pop("DS_ACCELERATOR", None)
os.environ["ROLL_DS_SHM_COMM"] = "1"  # skip the op-table edit that imports deepspeed early
from roll.strategies.deepspeed_strategy import _prepare_env, collective_backend
_prepare_env()
from deepspeed.accelerator import get_accelerator
print(os.environ["DS_ACCELERATOR"], type(get_accelerator()).__name__, collective_backend("npu:0"))
"""


def test_deepspeed_gets_the_npu_accelerator(tmp_path):
    pytest.importorskip("deepspeed")
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", DS_CHILD, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-3:] == ["npu", "NPU_Accelerator", "hccl"]


def test_hccl_process_group_on_the_gloo_alias(fake_npu, tmp_path):
    """init_process_group("hccl") and all_reduce through the stand-in (CPU tensors: it has no NPU kernels)."""
    dist.init_process_group(
        NpuPlatform.communication_backend, init_method=f"file://{tmp_path / 'rdzv'}", rank=0, world_size=1
    )
    try:
        t = torch.tensor([3.0])
        dist.all_reduce(t)
        assert t.item() == 3.0 and dist.get_backend() == "hccl"
    finally:
        dist.destroy_process_group()
