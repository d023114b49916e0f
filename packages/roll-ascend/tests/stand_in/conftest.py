"""A stand-in Ascend device layer, injected by the tests: it reports N devices and runs no kernels.

`torch.utils.rename_privateuse1_backend("npu")` plus a registered fake `torch.npu` module give
`torch.device("npu:0")` and `torch.npu.device_count()`; a fake `torch_npu` in sys.modules makes the plugin's
probe succeed; `hccl` is registered as an alias of gloo so `init_process_group("hccl")` works on CPU.
Allocating a tensor on `npu` does not work (no kernels): nothing here executes on a device.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
import types
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist

from roll.platforms import available_platforms
from roll_ascend import runtime


class _FakeNpu(types.ModuleType):
    class Event:  # DeepSpeed's NPU accelerator names these types when it imports; none is ever created
        pass

    class Stream:
        pass

    def __init__(self) -> None:
        super().__init__("torch.npu")
        self.count = 0
        self.chip = "Ascend910B3"
        self.emptied = 0

    def device_count(self) -> int:
        return self.count

    def is_available(self) -> bool:
        return self.count > 0

    def get_device_name(self, index: int = 0) -> str:
        return self.chip

    def memory_allocated(self, device: int = 0) -> int:
        return 1024 * (device + 1)

    def memory_reserved(self, device: int = 0) -> int:
        return 4096 * (device + 1)

    def empty_cache(self) -> None:
        self.emptied += 1


_NPU = _FakeNpu()


def _install_device_layer() -> None:
    """Once per process: torch allows one PrivateUse1 rename and one registration of a device module."""
    if torch._C._get_privateuse1_backend_name() != "npu":
        torch.utils.rename_privateuse1_backend("npu")
    if not isinstance(getattr(torch, "npu", None), _FakeNpu):
        torch._register_device_module("npu", _NPU)
    if "hccl" not in dist.Backend.backend_list:

        def gloo(store, rank, size, timeout: timedelta):
            return dist.ProcessGroupGloo(store, rank, size, timeout)

        dist.Backend.register_backend("hccl", gloo, devices=["cpu"])


def fake_torch_npu() -> types.ModuleType:
    """An empty `torch_npu` with a module spec as an installed one has: libraries probe for it with
    importlib.util.find_spec (accelerate, which transformers' optimization module imports), which fails on None."""
    module = types.ModuleType("torch_npu")
    module.__spec__ = importlib.machinery.ModuleSpec("torch_npu", None)
    return module


def _reset() -> None:
    runtime.probe.cache_clear()
    available_platforms.cache_clear()


@pytest.fixture
def fake_npu(monkeypatch):
    """The stand-in with 4 devices; yields the fake `torch.npu` (set `.count` / `.chip` to change it)."""
    _install_device_layer()
    monkeypatch.setitem(sys.modules, "torch_npu", fake_torch_npu())
    monkeypatch.setattr(_NPU, "count", 4)
    monkeypatch.setattr(_NPU, "chip", "Ascend910B3")
    # DeepSpeed caches its accelerator process-wide at first import and the stand-in cannot host its NPU
    # one (test_platform.py checks that choice in a child): config checks here keep the CPU accelerator
    monkeypatch.setenv("DS_ACCELERATOR", os.environ.get("DS_ACCELERATOR", "cpu"))
    _reset()
    yield _NPU
    _NPU.count = 0
    monkeypatch.undo()  # drop the fake torch_npu before the caches are rebuilt without it
    _reset()


@pytest.fixture
def no_torch_npu(monkeypatch):
    """torch_npu as on this machine: absent, or broken like a torch-npu wheel without CANN."""
    _reset()
    yield monkeypatch
    monkeypatch.undo()
    _reset()
