"""The benchmark's plots: throughput of every target against connections, and latency CDFs of the JSON ones."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt

from distill_bench.results.bench import TargetResult


def plot_throughput(results: Sequence[TargetResult], path: Path) -> None:
    fig, axis = plt.subplots(figsize=(8, 5))
    axis.set_prop_cycle(color=[plt.get_cmap("tab20")(i) for i in range(20)])  # more targets than 10 default colours
    for t in results:
        axis.plot([r.connections for r in t.runs], [r.requests_per_s for r in t.runs], marker="o", label=t.target.label)
    axis.set(xscale="log", yscale="log", xlabel="connections (wrk)", ylabel="requests/s", title="Throughput")
    first = results[0].runs
    axis.set_xticks([r.connections for r in first], [str(r.connections) for r in first])
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency_cdfs(results: Sequence[TargetResult], path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, connections in zip(axes, (1, 32), strict=True):
        for t in results:
            if t.target.body == "binary":
                continue
            run = next((r for r in t.runs if r.connections == connections), None)
            if run:
                points = sorted((us / 1e3, percent / 100) for percent, us in run.latency_us.items())
                axis.plot(*zip(*points, strict=True), marker=".", label=t.target.label)
        axis.set(
            xscale="log",
            xlabel="latency (ms, log)",
            ylabel="fraction of requests",
            title=f"Latency CDF, {connections} connection(s), JSON",
        )
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
