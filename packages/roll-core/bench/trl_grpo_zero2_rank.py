"""One rank of TRL's GRPOTrainer with its DeepSpeed ZeRO-2 integration (accelerate), run by bench_deepspeed.py.

`python trl_grpo_zero2_rank.py MODEL STEPS OUT.json WORKDIR` in .venv-peers/trl with RANK / WORLD_SIZE /
MASTER_* set; fp32, micro 2 × GA 2 completions per rank per step, ~64-token prompts and up to 64 new tokens
(the bench's 128-token rows), gradient checkpointing; writes step times, post-import and peak RSS.
"""

import json
import os
import resource
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import deepspeed  # noqa: F401  (imports belong to the baseline, as in deepspeed_ranks.py)
import torch
import transformers
import trl
from datasets import Dataset


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(model_dir: str, steps: int, out: str, workdir: str) -> None:
    base = _rss_mib()
    torch.set_num_threads(1)
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    ds = Dataset.from_list([{"prompt": "Reply with the letter a: " + "a " * 56, "target": "a"}] * (8 * steps))

    def reward(completions, target, **kw):
        return [1.0 if c.strip()[:1] == t else 0.0 for c, t in zip(completions, target, strict=True)]

    times: list[float] = []

    class Timer(transformers.TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t0)

    zero2 = {
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "train_batch_size": "auto",
        "gradient_clipping": "auto",
        "zero_optimization": {
            "stage": 2,
            "overlap_comm": True,
            "contiguous_gradients": True,
            "reduce_bucket_size": "auto",
            "allgather_bucket_size": 500000000,
        },
    }
    cfg = trl.GRPOConfig(
        output_dir=workdir,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        num_generations=4,
        max_completion_length=64,
        learning_rate=1e-3,
        beta=0.0,
        max_steps=steps,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        max_grad_norm=1.0,
        disable_tqdm=True,
        bf16=False,
        deepspeed=zero2,
        gradient_checkpointing=True,
    )
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    trainer = trl.GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=cfg,
        train_dataset=ds,
        processing_class=tok,
        callbacks=[Timer()],
    )
    trainer.train()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(out, "w") as f:
        json.dump(
            {"version": trl.__version__, "seconds": times, "peak_rss_mib": peak, "base_rss_mib": base}, f
        )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
