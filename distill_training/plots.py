"""The report's plots (PNG): the accuracy-latency frontier (against batch-1 latency and against parameters), and
every method against the control per seed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker
from matplotlib.axes import Axes

from distill_training.frontier import ROLES, Entry
from distill_training.losses import CONTROL


def _log_axis(ax: Axes, values: list[float], label: str) -> None:
    ax.set_xscale("log")
    ax.set_xlim(min(values) / 1.6, max(values) * 1.6)
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    ax.set_xlabel(label)
    ax.grid(True, which="both", alpha=0.3)


def _latency(e: Entry) -> float:
    return e.latency_us


def _parameters(e: Entry) -> float:
    return float(e.parameters)


_AXES: list[tuple[Callable[[Entry], float], str]] = [
    (_latency, "onnxruntime batch-1 latency p50 (µs, log scale)"),
    (_parameters, "parameters (log scale)"),
]


def plot_frontier(frontier: list[Entry], path: Path) -> None:
    """Test accuracy against batch-1 latency (left) and parameters (right); exported models ringed."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, (x_of, label) in zip(axes, _AXES, strict=True):
        for index, role in sorted(enumerate(ROLES), key=lambda pair: pair[1] == "student"):  # the student on top
            group = [e for e in frontier if e.role == role]
            if group:
                ax.scatter(
                    [x_of(e) for e in group],
                    [e.test_accuracy * 100 for e in group],
                    color=f"C{index}",
                    label=role,
                    s=36,
                    zorder=3,
                )
        for e in frontier:
            if e.exported:
                ax.scatter([x_of(e)], [e.test_accuracy * 100], s=220, facecolors="none", edgecolors="black", zorder=4)
            short = {
                "candidate": f"{e.architecture} {e.method}",
                "student": f"student: {e.architecture} {e.method}",
                "control": "control",
            }.get(e.role, e.architecture)
            ax.annotate(
                short,
                (x_of(e), e.test_accuracy * 100),
                textcoords="offset points",
                xytext=(6, -12 if e.role == "control" else -3),
                fontsize=7,
            )
        _log_axis(ax, [x_of(e) for e in frontier], label)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Accuracy-latency frontier (exported models ringed)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_methods(comparison: dict[str, Any], path: Path) -> None:
    """Each method's test accuracy per seed, the control first, with each method's mean as a dashed line."""
    methods = comparison["methods"]
    order = [CONTROL, *(m for m in methods if m != CONTROL)]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    width = 0.6 / max(1, len(order) - 1)
    for offset, method in enumerate(order):
        accs = np.array(methods[method]["test_accuracy"]) * 100
        label = "label-only control" if method == CONTROL else method
        ax.scatter(
            np.arange(len(accs)) + offset * width, accs, color=f"C{offset}", label=f"{label} (mean {accs.mean():.2f}%)"
        )
        ax.axhline(accs.mean(), linestyle="--", linewidth=0.8, color=f"C{offset}")
    ax.set_xticks(range(comparison["seeds"]))
    ax.set_xlabel("seed")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Methods vs label-only control, same seeds ({comparison['candidate']})")
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
