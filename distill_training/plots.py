"""The report's plots (PNG): accuracy vs latency of the three models, and KD vs control per seed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker

if TYPE_CHECKING:
    from distill_training.report import Row


def plot_tradeoff(rows: list[Row], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for row in rows:
        ax.scatter(row.p50_us, row.accuracy * 100, s=40 + row.parameters**0.5 / 2)
        ax.annotate(
            f"{row.label}\n{row.parameters:,} params",
            (row.p50_us, row.accuracy * 100),
            textcoords="offset points",
            xytext=(8, -4),
            fontsize=8,
        )
    ax.set_xscale("log")
    latencies = [r.p50_us for r in rows]
    ax.set_xlim(min(latencies) / 1.6, max(latencies) * 2.5)  # room for the labels
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("onnxruntime batch-1 latency p50 (µs, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs latency")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_seeds(comparison: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for offset, (method, label) in enumerate((("none", "label-only control"), ("kd", "KD"))):
        accs = np.array(comparison[method]["test_accuracy"]) * 100
        ax.scatter(np.arange(len(accs)) + offset * 0.15, accs, label=f"{label} (mean {accs.mean():.2f}%)")
        ax.axhline(accs.mean(), linestyle="--", linewidth=0.8, color=f"C{offset}")
    ax.set_xticks(range(comparison["seeds"]))
    ax.set_xlabel("seed")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("KD vs label-only control, same seeds")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
