"""The `vllm` strategy on CUDA (skipped without CUDA or the CUDA vllm build): generation and log-probs vs
hf_train after a weight sync, and sleep/wake freeing device memory. Not yet run on a GPU machine."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("vllm", reason="needs the CUDA vllm build (`pip install roll-core[vllm]`)")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

from roll.config import GeneratingArgs, ModelArgs, StrategyArgs, TrainingArgs, WorkerConfig  # noqa: E402
from roll.strategies.base import LossConfig  # noqa: E402
from roll.strategies.hf import HfTrainStrategy  # noqa: E402

GREEDY = GeneratingArgs(do_sample=False, max_new_tokens=16)


def _role(path, strategy: str) -> WorkerConfig:
    sc = {"gpu_memory_utilization": 0.3, "enforce_eager": True, "max_model_len": 512}
    return WorkerConfig(
        model_args=ModelArgs(model_name_or_path=str(path), dtype="fp32", attn_implementation="sdpa"),
        training_args=TrainingArgs(learning_rate=5e-2, per_device_train_batch_size=4, max_steps=2),
        strategy_args=StrategyArgs(strategy, sc if strategy == "vllm" else None),
    )


def test_sync_generate_and_sleep_on_cuda(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path / "vllm-cache"))
    from roll.strategies.vllm_strategy import VllmStrategy

    engine = VllmStrategy(_role(tiny_model_dir, "vllm"), seed=0, device="cuda:0")
    try:
        train = HfTrainStrategy(_role(tiny_model_dir, "hf_train"), seed=0, device="cuda:0")
        train.set_total_steps(2)
        g = torch.Generator().manual_seed(0)
        prompts = [torch.randint(0, 250, (40 + i,), generator=g).tolist() for i in range(4)]
        seqs = [p + list(range(100, 110)) for p in prompts]
        L = max(map(len, seqs))
        ids = torch.full((4, L), engine.tokenizer.pad_token_id)
        mask = torch.zeros((4, L), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)], mask[i, : len(s)] = torch.tensor(s), 1
        batch = {"input_ids": ids, "attention_mask": mask}
        rmask = mask[:, 1:].float()
        adv = torch.tensor([1.0, -1.0, 1.0, -1.0])[:, None] * rmask
        train.train_step({**batch, "response_mask": rmask, "advantages": adv}, LossConfig())
        engine.load_state_dict(train.state_dict())
        want = train.compute_log_probs(batch)
        assert (engine.compute_log_probs(batch) - want).abs().max() < 1e-3
        outs = engine.generate(prompts, [16] * 4, GREEDY)
        for p, o in zip(prompts, outs, strict=True):
            full = torch.tensor([p + o.token_ids])
            lp = train.compute_log_probs({"input_ids": full, "attention_mask": torch.ones_like(full)})
            assert torch.allclose(torch.tensor(o.log_probs), lp[0, len(p) - 1 :], atol=1e-3)
        free_awake = torch.cuda.mem_get_info()[0]
        engine.offload_states()
        assert engine.asleep and torch.cuda.mem_get_info()[0] > free_awake + (1 << 28)  # KV cache freed
        engine.load_states()
        assert [o.token_ids for o in engine.generate(prompts, [16] * 4, GREEDY)] == [
            o.token_ids for o in outs
        ]
    finally:
        engine.close()
