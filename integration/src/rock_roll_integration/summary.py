"""The demo's summary: evaluation rows, throughput figures, where the outputs are; as JSON and a text table."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class EvalRow:
    """One validation pass over the same fixed episodes (greedy decoding)."""

    stage: str
    meaning: str
    success_rate: float
    mean_score: float
    valid_action_rate: float
    episodes: int


@dataclass
class Summary:
    model: str
    envs: str
    rl_steps: int
    warmup_iterations: int
    warmup_episodes: int
    warmup_nll_first: float
    warmup_nll_last: float
    evals: list[EvalRow]
    env_steps: int
    env_steps_per_s: float
    env_wait_share: float
    tokens_per_s: float
    rl_seconds: float
    wall_seconds: float
    tensorboard_dir: str
    curves_png: str
    metrics_jsonl: str
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    def table(self) -> str:
        """A plain-text report: the evaluation rows, then the run's figures."""
        lines = [
            f"ROCK & ROLL demo: {self.model} on Sokoban envs ({self.envs})",
            "",
            f"{'stage':<16} {'success':>8} {'score':>7} {'valid':>6} {'episodes':>8}  meaning",
        ]
        for r in self.evals:
            lines.append(
                f"{r.stage:<16} {r.success_rate:>8.1%} {r.mean_score:>7.2f} {r.valid_action_rate:>6.0%} "
                f"{r.episodes:>8}  {r.meaning}"
            )
        lines += [
            "",
            f"{'RL steps':<28} {self.rl_steps}",
            f"{'warm-up':<28} {self.warmup_iterations} iterations, {self.warmup_episodes} expert episodes, "
            f"NLL {self.warmup_nll_first:.2f} -> {self.warmup_nll_last:.2f}",
            f"{'env steps (RL)':<28} {self.env_steps}",
            f"{'env steps/s (RL wall)':<28} {self.env_steps_per_s:.1f}",
            f"{'env waiting (share of RL)':<28} {self.env_wait_share:.1%}",
            f"{'tokens/s (RL wall)':<28} {self.tokens_per_s:.0f}",
            f"{'RL wall time':<28} {self.rl_seconds:.1f} s",
            f"{'total wall time':<28} {self.wall_seconds:.1f} s "
            + "("
            + ", ".join(f"{k} {v:.0f} s" for k, v in self.stage_seconds.items())
            + ")",
            f"{'TensorBoard':<28} {self.tensorboard_dir}",
            f"{'curves':<28} {self.curves_png}",
            f"{'metrics':<28} {self.metrics_jsonl}",
        ]
        return "\n".join(lines)
