"""Training curves from metrics.jsonl to a PNG (needs matplotlib: `pip install roll-core[plot]`)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_KEYS = ("rollout/score/mean", "val/score/mean", "actor/pg_loss", "actor/entropy")


def plot_metrics(jsonl: str | Path, png: str | Path, keys: tuple[str, ...] = DEFAULT_KEYS) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: `pip install roll-core[plot]`") from exc
    from roll.agentic.tracking import read_jsonl

    rows = read_jsonl(jsonl)
    present = [k for k in keys if any(k in r for r in rows)]
    fig, axes = plt.subplots(len(present) or 1, 1, figsize=(7, 2.4 * max(1, len(present))), squeeze=False)
    for ax, key in zip(axes[:, 0], present, strict=False):
        pts = [(r["step"], r[key]) for r in rows if key in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if len(pts) < 30 else None)
        ax.set_ylabel(key, fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return png
