"""The distillation report: teacher, KD student and label-only control side by side, plus the seed comparison.

Writes `<report_dir>/distillation.md`, `distillation.json` and two PNG plots. Latency is onnxruntime batch-1
p50 with the same intra-op thread count for every model, measured in interleaved rounds so that a noisy
neighbour on the machine slows every model alike.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from distill_training.export import INPUT_NAME, Published, session

# The targets (default profile).
TARGETS = {
    "teacher_accuracy": 0.93,
    "student_accuracy": 0.90,
    "param_ratio": 10.0,
    "latency_ratio": 20.0,
    "pipeline_seconds": 20 * 60,
}


@dataclass(frozen=True)
class Row:
    label: str
    name: str
    method: str
    accuracy: float
    parameters: int
    size_bytes: int
    p50_us: float
    p90_us: float


def measure_latency(paths: dict[str, Path], *, threads: int, runs: int, rounds: int = 5) -> dict[str, list[float]]:
    """Batch-1 onnxruntime latencies (seconds) per model, `runs` calls split over interleaved rounds."""
    sessions = {label: session(path, threads=threads) for label, path in paths.items()}
    x = np.random.default_rng(0).standard_normal((1, *_input_shape(sessions))).astype(np.float32)
    times: dict[str, list[float]] = {label: [] for label in sessions}
    for sess in sessions.values():
        for _ in range(20):  # warm-up
            sess.run(None, {INPUT_NAME: x})
    for _ in range(rounds):
        for label, sess in sessions.items():
            for _ in range(max(1, runs // rounds)):
                start = time.perf_counter()
                sess.run(None, {INPUT_NAME: x})
                times[label].append(time.perf_counter() - start)
    return times


def _input_shape(sessions: dict[str, Any]) -> list[int]:
    shape = next(iter(sessions.values())).get_inputs()[0].shape
    return [int(d) for d in shape[1:]]


def build_rows(published: dict[str, Published], latencies: dict[str, list[float]]) -> list[Row]:
    rows = []
    for label, pub in published.items():
        record = pub.card.versions[pub.card.latest_version]
        lat = np.array(latencies[label]) * 1e6
        rows.append(
            Row(
                label,
                pub.card.name,
                record.method,
                record.test_accuracy,
                record.parameters,
                record.size_bytes,
                float(np.percentile(lat, 50)),
                float(np.percentile(lat, 90)),
            )
        )
    return rows


def _targets(
    rows: dict[str, Row], comparison: dict[str, Any], total_seconds: float | None
) -> list[tuple[str, str, bool]]:
    t, s, c = rows["teacher"], rows["student"], rows["control"]
    diff = comparison["difference"]
    out = [
        (
            f"teacher test accuracy >= {TARGETS['teacher_accuracy']:.1%}",
            f"{t.accuracy:.2%}",
            t.accuracy >= TARGETS["teacher_accuracy"],
        ),
        (
            f"KD student test accuracy >= {TARGETS['student_accuracy']:.1%}",
            f"{s.accuracy:.2%}",
            s.accuracy >= TARGETS["student_accuracy"],
        ),
        (
            f"KD beats control on the mean of {comparison['seeds']} seeds",
            f"{diff['mean'] * 100:+.2f} pts (std {diff['std'] * 100:.2f}), KD ahead on {diff['kd_wins']}"
            f"/{comparison['seeds']} seeds",
            diff["mean"] > 0,
        ),
        (
            f"student has >= {TARGETS['param_ratio']:.0f}x fewer parameters",
            f"{t.parameters / s.parameters:.1f}x",
            t.parameters / s.parameters >= TARGETS["param_ratio"],
        ),
        (
            f"student batch-1 latency >= {TARGETS['latency_ratio']:.0f}x lower",
            f"{t.p50_us / s.p50_us:.1f}x",
            t.p50_us / s.p50_us >= TARGETS["latency_ratio"],
        ),
    ]
    if total_seconds is not None:
        out.append(
            (
                "training pipeline within 20 minutes",
                f"{total_seconds / 60:.1f} min",
                total_seconds <= TARGETS["pipeline_seconds"],
            )
        )
    del c
    return out


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


def write_report(
    report_dir: Path,
    *,
    rows: list[Row],
    comparison: dict[str, Any],
    timings: dict[str, float],
    teacher_history: list[dict[str, Any]],
    environment: dict[str, Any],
    profile: str,
    threads: int,
) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    by_label = {r.label: r for r in rows}
    total = sum(timings.values()) if timings else None
    targets = _targets(by_label, comparison, total)
    plot_tradeoff(rows, report_dir / "distillation_tradeoff.png")
    plot_seeds(comparison, report_dir / "distillation_seeds.png")
    payload = {
        "profile": profile,
        "models": [r.__dict__ for r in rows],
        "comparison": comparison,
        "timings_seconds": timings,
        "targets": [{"target": t, "measured": m, "met": ok} for t, m, ok in targets],
        "teacher_history": teacher_history,
        "environment": environment,
    }
    (report_dir / "distillation.json").write_text(json.dumps(payload, indent=2) + "\n")
    md = _markdown(by_label, comparison, timings, targets, environment, profile, threads)
    path = report_dir / "distillation.md"
    path.write_text(md)
    return path


def _markdown(
    rows: dict[str, Row],
    comparison: dict[str, Any],
    timings: dict[str, float],
    targets: list[tuple[str, str, bool]],
    env: dict[str, Any],
    profile: str,
    threads: int,
) -> str:
    t = rows["teacher"]
    lines = [
        f"# Distillation report ({profile} profile)",
        "",
        f"Generated {env['date']} on {env['cpu']} ({env['cores']} cores, {env['precision']} teacher training). "
        "The machine's cores were shared with other jobs, so times may be inflated.",
        "",
        "| model | name | method | test accuracy (ONNX) | parameters | ONNX size | batch-1 p50 | p90 "
        "| speedup vs teacher |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows.values():
        lines.append(
            f"| {r.label} | `{r.name}` | {r.method} | {r.accuracy:.2%} | {r.parameters:,} | "
            f"{r.size_bytes / 1024:,.0f} KiB | {r.p50_us:,.0f} µs | {r.p90_us:,.0f} µs | "
            f"{t.p50_us / r.p50_us:.1f}x |"
        )
    lines += [
        "",
        f"Latency: onnxruntime CPU, batch 1, {threads} intra-op thread(s) for every model.",
        "",
        "![accuracy vs latency](distillation_tradeoff.png)",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {measured} | {'yes' if ok else '**no**'} |" for name, measured, ok in targets]
    kd, none, diff = comparison["kd"], comparison["none"], comparison["difference"]
    lines += [
        "",
        f"## KD vs label-only control ({comparison['seeds']} seeds, PyTorch test accuracy)",
        "",
        "Same architecture, recipe, seeds (initialisation and batch order); only the loss differs. "
        f"KD: T={comparison['student']['temperature']}, weight {comparison['student']['kd_weight']} "
        "(chosen on the validation split).",
        "",
        "| seed | KD | control | difference |",
        "|---|---|---|---|",
    ]
    for seed, (a, b) in enumerate(zip(kd["test_accuracy"], none["test_accuracy"], strict=True)):
        lines.append(f"| {seed} | {a:.2%} | {b:.2%} | {(a - b) * 100:+.2f} pts |")
    lines += [
        f"| mean ± std | {kd['mean']:.2%} ± {kd['std'] * 100:.2f} | {none['mean']:.2%} ± "
        f"{none['std'] * 100:.2f} | {diff['mean'] * 100:+.2f} ± {diff['std'] * 100:.2f} pts |",
        "",
        "![KD vs control per seed](distillation_seeds.png)",
        "",
        "## Step wall times",
        "",
        "| step | seconds |",
        "|---|---|",
    ]
    lines += [f"| {step} | {sec:,.1f} |" for step, sec in timings.items()]
    if timings:
        lines.append(f"| **total** | {sum(timings.values()):,.1f} |")
    lines += ["", "Steps whose outputs were already up to date take under a second (cached).", ""]
    return "\n".join(lines)


def environment(precision: str) -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "precision": precision,
    }
