"""TEST-ONLY CPU shim for megatron-core 0.16 (roll never imports it).

megatron-core's layers ask CUDA for two things even when every tensor is on the CPU: the model-parallel RNG
tracker (`get_cuda_rng_tracker().fork()` around init and dropout) and `torch.cuda.current_device()` (buffers,
rotary tables). With those answered on the CPU, a GPTModel (local layer spec, `use_cpu_initialization=True`)
runs forward and backward on gloo, TP included, which lets CI check conversion and the strategy's own code.
`megatron_train` itself refuses CPU devices (`require_cuda`); `cpu_strategy` lifts that guard for a test.
"""

from __future__ import annotations

import contextlib

import pytest
import torch


class NoopRngTracker:
    """Stands in for megatron's CudaRNGStatesTracker: forks are plain contexts (dropout is 0 here)."""

    def fork(self, name=None):
        return contextlib.nullcontext()

    def add(self, name, seed):
        return None

    def get_states(self):
        return {}

    def set_states(self, states):
        return None

    def reset(self):
        return None

    def is_initialized(self):
        return True


@contextlib.contextmanager
def megatron_on_cpu(tp: int = 1):
    """megatron's parallel state at TP=`tp` on the gloo group (a 1-rank one unless one exists), CUDA
    questions answered on the CPU; yields the MonkeyPatch that holds the replacements."""
    from megatron.core import parallel_state, tensor_parallel
    from megatron.core.tensor_parallel import layers, random

    from roll.strategies.deepspeed_strategy import _single_rank_group

    tracker = NoopRngTracker()
    with pytest.MonkeyPatch.context() as mp:
        for module in (tensor_parallel, random, layers):
            mp.setattr(module, "get_cuda_rng_tracker", lambda *a, **k: tracker)
        mp.setattr(tensor_parallel, "model_parallel_cuda_manual_seed", lambda *a, **k: None)
        mp.setattr(torch.cuda, "current_device", lambda: "cpu")
        _single_rank_group("cpu")
        parallel_state.initialize_model_parallel(tp, 1)
        try:
            yield mp
        finally:
            parallel_state.destroy_model_parallel()


def cpu_strategy(mp: pytest.MonkeyPatch) -> None:
    """Lift megatron_train's CUDA guard (inside megatron_on_cpu only) so the strategy's own code runs on CPU."""
    from roll.strategies import megatron_strategy

    mp.setattr(megatron_strategy, "require_cuda", lambda device: None)
