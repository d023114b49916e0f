"""megatron_train on CPU: GPTModel vs transformers logits and gradients, HF export, the strategy's train step
against hf_train (through the test-only CPU shim), its CUDA refusal, and config validation with key paths."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch

from roll.config import ModelArgs, StrategyArgs, TrainingArgs, WorkerConfig
from roll.strategies.base import LossConfig
from roll.strategies.megatron_config import MegatronParallel

pytest.importorskip(
    "megatron.core", reason="megatron-core is not installed: `pip install roll-core[megatron]`"
)

HERE = Path(__file__).resolve().parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shim = _load("megatron_cpu_shim")  # TEST-ONLY: answers megatron-core's CUDA questions on the CPU


LLAMA_UNTIED = dict(
    vocab_size=300,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=1,
    tie_word_embeddings=False,
)


@pytest.fixture
def megatron_cpu():
    with shim.megatron_on_cpu() as mp:
        yield mp


def _hf_models(tiny_model_dir):
    """The tiny Qwen2 (tied, qkv biases) and an untied GQA-4:1 Llama, both fp32 in eval mode."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    qwen = AutoModelForCausalLM.from_pretrained(
        tiny_model_dir, dtype=torch.float32, attn_implementation="eager"
    )
    torch.manual_seed(1)
    llama = LlamaForCausalLM(LlamaConfig(**LLAMA_UNTIED, attn_implementation="eager"))
    return [qwen.eval(), llama.eval()]


def _batch(vocab: int, rows: int = 3):
    torch.manual_seed(2)
    ids = torch.randint(0, vocab, (rows, 11))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0  # right padding
    mask[2, :3] = 0  # left padding
    return ids, mask


def _megatron(hf):
    from roll.models.megatron_gpt import MegatronCausalLM, build_gpt, load_hf_state

    gpt = build_gpt(hf.config, MegatronParallel(), torch.float32, cpu_init=True)
    model = MegatronCausalLM(gpt, hf.config)
    load_hf_state(model, hf.state_dict(), tp=1, tp_rank=0)
    return model.eval()


def test_gpt_logits_and_gradients_match_transformers(megatron_cpu, tiny_model_dir):
    from roll.models.megatron_convert import GptShape, hf_to_megatron
    from roll.models.megatron_gpt import megatron_weights

    for hf in _hf_models(tiny_model_dir):
        mg = _megatron(hf)
        ids, mask = _batch(hf.config.vocab_size)
        valid = mask.bool()
        want = hf(input_ids=ids, attention_mask=mask).logits
        got = mg(input_ids=ids, attention_mask=mask).logits
        assert got.shape == want.shape
        diff = (got - want).abs()[valid].max().item()
        assert diff < 1e-4, (hf.config.model_type, diff)

        # gradients of one loss: megatron's fused grads are the HF grads fused the same way
        (want[valid].logsumexp(-1).sum()).backward()
        (got[valid].logsumexp(-1).sum()).backward()
        hf_grads = {k: p.grad for k, p in hf.named_parameters()}
        if hf.config.tie_word_embeddings:
            hf_grads["lm_head.weight"] = hf_grads["model.embed_tokens.weight"]
        expect = hf_to_megatron(hf_grads, GptShape.from_hf(hf.config), vocab_rows=mg.gpt.vocab_size)
        for name, p in megatron_weights(mg).items():
            assert torch.allclose(p.grad, expect[name], atol=1e-4, rtol=1e-3), (hf.config.model_type, name)


def test_export_round_trips_and_saves_an_hf_folder(megatron_cpu, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from roll.models.megatron_gpt import export_hf_state, save_hf_folder
    from roll.models.tiny import build_byte_tokenizer

    for hf in _hf_models(tiny_model_dir):
        state = export_hf_state(_megatron(hf), tp=1)
        original = hf.state_dict()
        assert sorted(state) == sorted(original)
        assert all(torch.equal(state[k], original[k]) for k in original)
        folder = tmp_path / hf.config.model_type
        save_hf_folder(hf.config, state, build_byte_tokenizer(), folder)
        back = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).state_dict()
        assert all(torch.equal(back[k], original[k]) for k in original)


def _role(path, strategy: str, strategy_config: dict | None = None) -> WorkerConfig:
    return WorkerConfig(
        model_args=ModelArgs(
            model_name_or_path=str(path),
            dtype="fp32",
            attn_implementation="eager",
            disable_gradient_checkpointing=True,
        ),
        training_args=TrainingArgs(
            learning_rate=1e-3,
            per_device_train_batch_size=2,
            gradient_accumulation_steps=2,
            max_grad_norm=1.0,
            max_steps=4,
        ),
        strategy_args=StrategyArgs(strategy_name=strategy, strategy_config=strategy_config),
        infer_batch_size=2,
    )


def _train_batch(vocab: int, rows: int = 6) -> dict[str, torch.Tensor]:
    ids, mask = _batch(vocab, rows)
    gen = torch.Generator().manual_seed(3)
    response = mask[:, 1:].clone()
    response[:, :4] = 0  # the prompt
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "response_mask": response,
        "advantages": torch.randn(rows, ids.shape[1] - 1, generator=gen) * response,
    }


def test_train_step_matches_hf_train(megatron_cpu, tiny_model_dir):
    """Same weights, batch and loss: megatron_train's metrics and updated HF weights equal hf_train's."""
    from roll.strategies.hf import HfInferStrategy, HfTrainStrategy
    from roll.strategies.megatron_strategy import MegatronTrainStrategy

    shim.cpu_strategy(megatron_cpu)
    sc = {"tensor_model_parallel_size": 1, "use_distributed_optimizer": True, "recompute_granularity": None}
    role = _role(tiny_model_dir, "megatron_train", sc)
    role.model_args.attn_implementation = (
        "fa2"  # ROLL's setting: megatron's attention is used, not flash-attn
    )
    mg = MegatronTrainStrategy(role, seed=0)
    hf = HfTrainStrategy(_role(tiny_model_dir, "hf_train"), seed=0)
    batch = _train_batch(259)
    ref = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    assert torch.allclose(mg.compute_log_probs(ref), hf.compute_log_probs(ref), atol=1e-5)
    loss = LossConfig(ppo_epochs=1)
    for _ in range(2):
        got, want = mg.train_step(copy.deepcopy(batch), loss), hf.train_step(copy.deepcopy(batch), loss)
        for key in ("actor/pg_loss", "actor/grad_norm", "actor/lr", "actor/backward_steps", "actor/entropy"):
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), key
    state, want_state = mg.state_dict(), hf.state_dict()
    assert sorted(state) == sorted(want_state)
    drift = max((state[k] - want_state[k]).abs().max().item() for k in want_state)
    assert drift < 1e-4
    # the train -> infer sync: hf_infer loads the trained weights strictly and scores like megatron
    infer = HfInferStrategy(_role(tiny_model_dir, "hf_infer"), seed=0)
    infer.load_state_dict(state)
    assert torch.allclose(infer.compute_log_probs(ref), mg.compute_log_probs(ref), atol=1e-5)
    mg.load_state_dict(want_state)
    assert all(torch.equal(v, want_state[k]) for k, v in mg.state_dict().items())


def test_strategy_refuses_cpu_with_a_clear_error(tiny_model_dir):
    from roll.strategies.registry import load_strategy_class

    cls = load_strategy_class("megatron_train")
    with pytest.raises(RuntimeError, match=r"megatron_train needs CUDA .*deepspeed_train or hf_train"):
        cls(_role(tiny_model_dir, "megatron_train"), device="cpu")


def test_config_errors_name_the_megatron_key(tiny_model_dir):
    from roll.config import ConfigError, load_and_validate

    examples = Path(__file__).resolve().parents[1] / "examples" / "tiny-cpu"
    sc = "actor_train.strategy_args.strategy_config"
    base = [f"pretrain={tiny_model_dir}", "actor_train.strategy_args.strategy_name=megatron_train"]
    with pytest.raises(ConfigError) as info:
        load_and_validate(
            examples,
            "grpo_letter_echo",
            [
                *base,
                f"+{sc}.tensor_model_parallel_sise=2",
                f"+{sc}.pipeline_model_parallel_size=2",
                f"+{sc}.expert_model_parallel_size=2",
                f"+{sc}.sequence_parallel=true",
                f"+{sc}.recompute_granularity=block",
            ],
        )
    problems = dict(info.value.problems)
    assert "did you mean 'tensor_model_parallel_size'" in problems[f"{sc}.tensor_model_parallel_sise"]
    assert "full, selective or null" in problems[f"{sc}.recompute_granularity"]
    with pytest.raises(ConfigError) as info:
        load_and_validate(
            examples,
            "grpo_letter_echo",
            [
                *base,
                f"+{sc}.pipeline_model_parallel_size=2",
                f"+{sc}.expert_model_parallel_size=2",
                f"+{sc}.sequence_parallel=true",
                f"+{sc}.tensor_model_parallel_size=2",
            ],
        )
    problems = dict(info.value.problems)
    assert "not wired" in problems[f"{sc}.pipeline_model_parallel_size"]
    assert "dense Qwen2/Llama" in problems[f"{sc}.expert_model_parallel_size"]
    assert "does not divide the role's 1 workers" in problems[f"{sc}.tensor_model_parallel_size"]
    assert "megatron_train needs CUDA" in problems["actor_train.device_mapping"]
    assert "Transformer Engine or apex" in problems[f"{sc}.sequence_parallel"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "strategy_config",
    [
        {"tensor_model_parallel_size": 2},
        {"tensor_model_parallel_size": 1, "use_distributed_optimizer": True},
    ],
    ids=["tp2", "dp2-distributed-optimizer"],
)
def test_two_gloo_ranks_match_hf_train(tiny_model_dir, tmp_path, strategy_config):
    """2 ranks (TP=2, or DP=2 with AdamW states sharded): log-probs, grad norms, weights equal hf_train's on
    the whole batch with the same optimizer-step grouping; a checkpoint resumes the second step exactly."""
    from roll.strategies.hf import HfTrainStrategy

    batch = _train_batch(259, rows=8)
    torch.save(batch, tmp_path / "batch.pt")
    spec = {
        "model": str(tiny_model_dir),
        "world_size": 2,
        "batch": str(tmp_path / "batch.pt"),
        "micro": 2,
        "ga": 2,
        "steps": 2,
        "strategy_config": strategy_config,
    }
    ranks = _load("megatron_ranks").launch(spec, str(tmp_path))
    role = _role(tiny_model_dir, "hf_train")
    role.training_args.per_device_train_batch_size = 4  # 2 ranks × 2 rows: one 8-row optimizer step
    role.infer_batch_size = 4
    hf = HfTrainStrategy(role, seed=0)
    ref = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    lp = torch.cat([r["log_probs"] for r in ranks])
    assert torch.allclose(lp, hf.compute_log_probs(ref), atol=1e-5)
    for step in range(2):
        want = hf.train_step(copy.deepcopy(batch), LossConfig())
        for r in ranks:
            got = r["metrics"][step]
            assert got["actor/grad_norm"] == pytest.approx(want["actor/grad_norm"], rel=1e-4), (step, got)
            assert got["actor/lr"] == want["actor/lr"]
    want_state = hf.state_dict()
    for r in ranks:
        assert max((r["state"][k] - want_state[k]).abs().max().item() for k in want_state) < 1e-4
        assert r["resumed"]["actor/grad_norm"] == pytest.approx(r["metrics"][1]["actor/grad_norm"], rel=1e-5)
        assert max((r["resumed_state"][k] - r["state"][k]).abs().max().item() for k in want_state) < 1e-6


ROLL_MEGATRON_BLOCK = {  # agentic_val_sokoban.yaml's commented-out megatron_train strategy_config
    "tensor_model_parallel_size": 1,
    "pipeline_model_parallel_size": 1,
    "expert_model_parallel_size": 1,
    "use_distributed_optimizer": True,
    "recompute_granularity": "full",
}


def test_strategy_config_translates_to_a_megatron_transformer_config(tiny_model_dir):
    from megatron.core.transformer.transformer_config import TransformerConfig
    from transformers import AutoConfig

    from roll.strategies.megatron_config import rope_theta, transformer_config_kwargs

    hf_config = AutoConfig.from_pretrained(tiny_model_dir)
    parallel = MegatronParallel.from_strategy_config(ROLL_MEGATRON_BLOCK)
    assert parallel == MegatronParallel(distributed_optimizer=True, recompute="full")
    full = TransformerConfig(**transformer_config_kwargs(hf_config, parallel, torch.bfloat16, cpu_init=True))
    assert (full.recompute_granularity, full.recompute_method, full.recompute_num_layers) == (
        "full",
        "uniform",
        1,
    )
    assert (full.num_attention_heads, full.num_query_groups, full.kv_channels, full.ffn_hidden_size) == (
        4,
        2,
        32,
        384,
    )
    assert full.add_qkv_bias and not full.add_bias_linear and full.gated_linear_unit and full.bf16
    assert full.normalization == "RMSNorm" and full.layernorm_epsilon == hf_config.rms_norm_eps
    selective = MegatronParallel(recompute="selective")
    cfg = TransformerConfig(**transformer_config_kwargs(hf_config, selective, torch.float32, cpu_init=True))
    assert cfg.recompute_granularity == "selective" and not cfg.bf16
    assert rope_theta(hf_config) == hf_config.rope_parameters["rope_theta"]


def test_roll_reference_megatron_block_fails_only_for_cuda():
    """ROLL's sokoban config switched to its megatron_train block: valid keys; on CPU only the device fails."""
    from roll.config import ConfigError, finalize, load_config, validate
    from roll.platforms import CpuPlatform

    ref = Path(__file__).resolve().parents[1] / "examples" / "qwen2.5-0.5B-agentic"
    cfg, _ = load_config(
        ref, "agentic_val_sokoban", ["actor_train.strategy_args.strategy_name=megatron_train"]
    )
    cfg.actor_train.strategy_args.strategy_config = dict(ROLL_MEGATRON_BLOCK)
    finalize(cfg)
    with pytest.raises(ConfigError) as info:
        validate(cfg, platform=CpuPlatform)
    problems = info.value.problems
    assert not [p for p, _ in problems if p.startswith("actor_train.strategy_args")], problems
    device = [m for p, m in problems if p == "actor_train.device_mapping"]
    assert any("megatron_train needs CUDA" in m for m in device)
