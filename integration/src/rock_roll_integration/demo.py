"""The main job: `python -m rock_roll_integration.demo [--model tiny|smollm2] [--steps N] [--out DIR]`.

Starts `rock-admin serve` (embedded defaults, state dir under the output dir, `stop_on_exit`), validates the
model on Sokoban envs served by ROCK sandboxes, warms it up by behaviour cloning on expert episodes, trains
it with ROLL's agentic GRPO pipeline, validates again, stops the admin by PID (also on Ctrl-C or failure),
then prints a summary table and writes `summary.json`, `curves.png` and TensorBoard events under the
output dir.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rock_roll_integration.envclock import EnvClock
from rock_roll_integration.envmodes import ENV_MODES, env_overrides
from rock_roll_integration.progress import DemoProgress
from rock_roll_integration.summary import EvalRow, Summary

CONFIG_DIR = Path(__file__).parent / "configs"
TAG = "SimpleSokoban"


@dataclass(frozen=True)
class ModelPreset:
    """A model's config and its warm-up: behaviour-cloning iterations and learning rate (each iteration
    plays `rollout_batch_size` expert episodes, so the RL run inherits exactly the warm-up's envs)."""

    config: str
    warmup_iterations: int
    warmup_lr: float


MODELS = {
    "tiny": ModelPreset("demo_tiny", warmup_iterations=50, warmup_lr=3e-3),
    "smollm2": ModelPreset("demo_smollm2", warmup_iterations=10, warmup_lr=5e-5),
}
# what the demo writes under --out; removed first so every run starts clean
OUTPUTS = ("logs", "tensorboard", "checkpoints", "warmup", "admin", "summary.json", "curves.png")
CURVE_KEYS = (
    "rollout/score/mean",
    f"env/{TAG}/success",
    f"val/env/{TAG}/success",
    "actor/pg_loss",
    "actor/entropy",
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m rock_roll_integration.demo", description=__doc__.split("\n")[0]
    )
    p.add_argument("--model", choices=sorted(MODELS), default="tiny")
    p.add_argument("--steps", type=int, default=None, help="RL steps (default: the config's max_steps)")
    p.add_argument(
        "--warmup", type=int, default=None, help="behaviour-cloning iterations (default per model)"
    )
    p.add_argument(
        "--out", type=Path, default=Path("output/demo"), help="output folder (default output/demo)"
    )
    p.add_argument("--envs", choices=ENV_MODES, default="sandbox", help="where envs run (default sandbox)")
    p.add_argument(
        "--validate-only",
        action="store_true",
        help="stop after the first validation (a quick check that the admin, sandboxes and model work)",
    )
    p.add_argument(
        "--progress-every",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="when stderr is not a terminal: a progress line this often (default 15)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a ROLL config override (repeatable), e.g. --set val_batch_size=8",
    )
    args = p.parse_args(argv)
    for name in ("steps", "warmup"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name}: must be at least 1, got {value}")
    if args.progress_every <= 0:
        p.error(f"--progress-every: must be positive, got {args.progress_every}")
    return args


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the admin is stopped either way."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def eval_row(stage: str, meaning: str, metrics: dict[str, float], episodes: int) -> EvalRow:
    """An EvalRow from roll's validation metrics (`val/env/<tag>/...`, `val/score/mean`)."""

    def mean_of(suffix: str) -> float:
        values = [v for k, v in metrics.items() if k.startswith("val/env/") and k.endswith(suffix)]
        return sum(values) / len(values) if values else 0.0

    return EvalRow(
        stage,
        meaning,
        success_rate=mean_of("/success"),
        mean_score=metrics.get("val/score/mean", 0.0),
        valid_action_rate=mean_of("/action_is_valid"),
        episodes=episodes,
    )


def run_demo(args: argparse.Namespace) -> Summary | EvalRow:
    """The whole job; returns the summary (also written to `<out>/summary.json`), or with
    `--validate-only` the first validation's row."""
    from rock_admin.testing import running_admin
    from rock_roll_integration.warmup import behaviour_clone, copy_policy
    from roll.agentic.pipeline import AgenticPipeline
    from roll.agentic.plot import plot_metrics
    from roll.config import load_and_validate

    preset = MODELS[args.model]
    warmup_iterations = args.warmup or preset.warmup_iterations
    out = args.out.resolve()
    for name in OUTPUTS:
        path = out / name
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    stages: dict[str, float] = {}
    progress = DemoProgress(interval=args.progress_every)

    def stage(name: str, total: int = 0, unit: str = "") -> None:
        progress.stage(name, total, unit)
        stages[name] = time.perf_counter()

    try:
        stage("start ROCK admin")
        with running_admin(out / "admin") as admin:
            overrides = [
                f"output_dir={out}",
                "progress_bar=false",
                *env_overrides(TAG, args.envs, admin.url),
                *([f"max_steps={args.steps}"] if args.steps else []),
                *args.overrides,
            ]
            cfg, _, _ = load_and_validate(CONFIG_DIR, preset.config, overrides)
            # the warm-up runs in a pipeline of its own: its own learning rate, optimizer and log folder
            warm_overrides = [
                *overrides,
                f"output_dir={out / 'warmup'}",
                f"tracker_kwargs.log_dir={out / 'tensorboard' / 'warmup'}",
                f"actor_train.training_args.learning_rate={preset.warmup_lr}",
            ]
            warm_cfg, _, _ = load_and_validate(CONFIG_DIR, preset.config, warm_overrides)
            pipe = AgenticPipeline(cfg, stdout=False)
            clock = EnvClock()
            for manager in pipe.managers:
                clock.attach(manager)
                manager.progress = progress.env
            try:
                stage("validate (before)", cfg.val_batch_size, "episodes")
                val_init = pipe.validate()
                if args.validate_only:
                    stage("stop ROCK admin")
                    return eval_row(
                        "before training",
                        f"the model as loaded: {cfg.pretrain}",
                        val_init,
                        cfg.val_batch_size,
                    )
                stage("warm-up", warmup_iterations, "iterations")
                warm_pipe = AgenticPipeline(warm_cfg, stdout=False)
                try:
                    warm = behaviour_clone(
                        warm_pipe,
                        warmup_iterations,
                        cfg.rollout_batch_size,
                        lambda i, nll: progress.advance(1, f"nll={nll:.3f}"),
                        envs_to=pipe.schedulers["train"],
                        progress=progress.env,
                    )
                    copy_policy(warm_pipe, pipe)
                finally:
                    warm_pipe.close()
                stage("RL", cfg.max_steps, "steps")
                before = clock.snapshot()
                t_rl = time.perf_counter()
                history = []
                for step in range(cfg.max_steps):
                    history.append(pipe.step(step))  # step 0 validates first: the "after warm-up" row
                    progress.advance(1, f"score={history[-1].get('rollout/score/mean', float('nan')):.2f}")
                rl_seconds = time.perf_counter() - t_rl
                env = clock.snapshot() - before
                stage("validate (after RL)", cfg.val_batch_size, "episodes")
                val_final = pipe.validate()
                pipe.tracker.log(val_final, cfg.max_steps)
            finally:
                pipe.close()
            stage("stop ROCK admin")
    finally:
        progress.close()
    ends = [*list(stages.values())[1:], time.perf_counter()]
    stage_seconds = {name: end - begin for (name, begin), end in zip(stages.items(), ends, strict=True)}
    jsonl = Path(cfg.logging_dir) / "metrics.jsonl"
    try:
        curves = str(plot_metrics(jsonl, out / "curves.png", CURVE_KEYS))
    except ImportError as exc:  # matplotlib is the `plot` extra of roll-core
        curves = f"not written: {exc}"
    tokens = sum(
        cfg.rollout_batch_size
        * (m.get("tokens/prompt_length/mean", 0.0) + m.get("tokens/non_prompt_length/mean", 0.0))
        for m in history
    )
    greedy = "greedy decoding, the same fixed validation episodes"
    summary = Summary(
        model=cfg.pretrain or "",
        envs=f"{args.envs}: {cfg.custom_envs[TAG].env_type}",
        rl_steps=cfg.max_steps,
        warmup_iterations=warm.iterations,
        warmup_episodes=warm.episodes,
        warmup_nll_first=warm.nll_first,
        warmup_nll_last=warm.nll_last,
        evals=[
            eval_row(
                "before training",
                f"the model as loaded: {cfg.pretrain} ({greedy})",
                val_init,
                cfg.val_batch_size,
            ),
            eval_row(
                "after warm-up",
                f"after behaviour cloning on {warm.episodes} expert episodes ({greedy})",
                history[0],
                cfg.val_batch_size,
            ),
            eval_row(
                "after RL",
                f"after {cfg.max_steps} GRPO steps on top ({greedy})",
                val_final,
                cfg.val_batch_size,
            ),
        ],
        env_steps=env.steps,
        env_steps_per_s=env.steps / rl_seconds,
        env_wait_share=env.wait_s / rl_seconds,
        tokens_per_s=tokens / rl_seconds,
        rl_seconds=rl_seconds,
        wall_seconds=time.perf_counter() - t_start,
        tensorboard_dir=str(cfg.tracker_kwargs.get("log_dir", "")),
        curves_png=curves,
        metrics_jsonl=str(jsonl),
        stage_seconds=stage_seconds,
    )
    summary.write(out / "summary.json")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    from roll.agentic.scheduler import EnvChurnError
    from roll.config import ConfigError

    args = parse_args(argv)
    try:
        with _sigterm_as_interrupt():
            summary = run_demo(args)
    except KeyboardInterrupt:
        print("demo: interrupted; the ROCK admin and its sandboxes were stopped", file=sys.stderr)
        return 130
    except ConfigError as exc:  # a bad --set or config: every problem with its key path
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    except EnvChurnError as exc:  # the envs cannot keep up on this machine: the message says why
        print(f"demo: {exc}", file=sys.stderr)
        return 3
    if isinstance(summary, EvalRow):
        print(
            f"validation: success {summary.success_rate:.1%}, score {summary.mean_score:.2f}, "
            f"valid actions {summary.valid_action_rate:.0%} over {summary.episodes} episodes"
        )
        return 0
    print()
    print(summary.table())
    print(f"\nsummary: {args.out.resolve() / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
