"""The distillation report: teacher, KD student and label-only control side by side, plus the seed comparison.

Writes `<report_dir>/distillation.md`, `distillation.json` and two PNG plots (accuracy vs latency, KD vs control
per seed). Latency is onnxruntime batch-1 p50 with the same intra-op thread count for every model.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distill_training.config import PipelineConfig
from distill_training.export import Published
from distill_training.plots import plot_seeds, plot_tradeoff
from modelrepo.host import cpu_name

# The project's targets for the default profile: teacher and KD student test accuracy, how many times fewer
# parameters and how many times lower batch-1 latency the student has, and the whole pipeline's wall time.
TEACHER_ACCURACY, STUDENT_ACCURACY, PARAM_RATIO, LATENCY_RATIO, PIPELINE_MINUTES = 0.93, 0.90, 10.0, 20.0, 20.0


@dataclass(frozen=True)
class Row:
    label: str
    name: str
    method: str  # as the card records them
    architecture: str
    accuracy: float
    parameters: int
    size_bytes: int
    p50_us: float
    p90_us: float


def build_rows(published: dict[str, Published], latencies: dict[str, list[float]]) -> list[Row]:
    rows = []
    for label, pub in published.items():
        record = pub.card.versions[pub.card.latest_version]
        lat = np.array(latencies[label]) * 1e6
        p50, p90 = float(np.percentile(lat, 50)), float(np.percentile(lat, 90))
        rows.append(
            Row(
                label,
                pub.card.name,
                record.method,
                record.architecture,
                record.test_accuracy,
                record.parameters,
                record.size_bytes,
                p50,
                p90,
            )
        )
    return rows


def targets(
    rows: dict[str, Row], comparison: dict[str, Any], total_seconds: float, *, own_teacher: bool = True
) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for each of the project's targets; for a teacher brought as an ONNX file only
    those that hold for any data (KD against the control, size and latency ratios), not the accuracy and time
    targets set for our Fashion-MNIST models."""
    t, s, diff = rows["teacher"], rows["student"], comparison["difference"]
    seeds = comparison["seeds"]
    checks = [
        (f"teacher test accuracy >= {TEACHER_ACCURACY:.1%}", f"{t.accuracy:.2%}", t.accuracy >= TEACHER_ACCURACY),
        (f"KD student test accuracy >= {STUDENT_ACCURACY:.1%}", f"{s.accuracy:.2%}", s.accuracy >= STUDENT_ACCURACY),
        (
            f"KD beats the control on the mean of {seeds} seeds",
            f"{diff['mean'] * 100:+.2f} ± {diff['std'] * 100:.2f} pts, KD ahead on {diff['kd_wins']}/{seeds} seeds",
            diff["mean"] > 0,
        ),
        (
            f"student has >= {PARAM_RATIO:.0f}x fewer parameters",
            f"{t.parameters / s.parameters:.1f}x",
            t.parameters / s.parameters >= PARAM_RATIO,
        ),
        (
            f"student batch-1 latency >= {LATENCY_RATIO:.0f}x lower",
            f"{t.p50_us / s.p50_us:.1f}x",
            t.p50_us / s.p50_us >= LATENCY_RATIO,
        ),
        (
            f"training pipeline within {PIPELINE_MINUTES:.0f} minutes",
            f"{total_seconds / 60:.1f} min",
            total_seconds <= PIPELINE_MINUTES * 60,
        ),
    ]
    return checks if own_teacher else checks[2:5]


def environment(precision: str) -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "precision": precision,
    }


def write_report(
    report_dir: Path,
    *,
    cfg: PipelineConfig,
    rows: list[Row],
    comparison: dict[str, Any],
    timings: dict[str, dict[str, float]],
    tuning: list[dict[str, float]],
    env: dict[str, Any],
) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    by_label = {r.label: r for r in rows}
    own_teacher = not cfg.onnx_teacher.path
    checks = targets(by_label, comparison, sum(timings["seconds"].values()), own_teacher=own_teacher)
    plot_tradeoff(rows, report_dir / "distillation_tradeoff.png")
    plot_seeds(comparison, report_dir / "distillation_seeds.png")
    payload = {
        "profile": cfg.profile,
        "models": [dataclasses.asdict(r) for r in rows],
        "comparison": comparison,
        "timings": timings,
        "tuning": tuning,
        "environment": env,
        "targets": [{"target": name, "measured": m, "met": ok} for name, m, ok in checks],
    }
    (report_dir / "distillation.json").write_text(json.dumps(payload, indent=2) + "\n")
    sections = [
        _summary(by_label, cfg, env),
        _targets_section(checks, cfg.profile),
        _seeds_section(comparison),
        _setup_section(cfg, tuning),
        _timings_section(timings),
    ]
    path = report_dir / "distillation.md"
    path.write_text("\n".join(line for section in sections for line in section))
    return path


def _summary(rows: dict[str, Row], cfg: PipelineConfig, env: dict[str, Any]) -> list[str]:
    t, s = rows["teacher"], rows["student"]
    lines = [
        f"# Distillation report ({cfg.profile} profile)",
        "",
        f"The KD student `{s.name}` keeps {s.accuracy / t.accuracy:.1%} of the teacher's test accuracy "
        f"({(s.accuracy - t.accuracy) * 100:+.2f} pts) with {t.parameters / s.parameters:.1f}x fewer parameters "
        f"and {t.p50_us / s.p50_us:.1f}x lower batch-1 latency.",
        "",
        f"Measured {env['date']} on {env['cpu']}, {env['cores']} cores ({env['precision']} teacher training).",
        "",
        "| model | name | method | architecture | test accuracy (ONNX) | parameters | ONNX size | batch-1 p50 | p90 "
        "| speedup |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows.values():
        lines.append(
            f"| {r.label} | `{r.name}` | {r.method} | {r.architecture} | {r.accuracy:.2%} | {r.parameters:,} | "
            f"{r.size_bytes / 1024:,.0f} KiB | {r.p50_us:,.1f} µs | {r.p90_us:,.1f} µs | "
            f"{t.p50_us / r.p50_us:.1f}x |"
        )
    return [
        *lines,
        "",
        f"Test accuracy of the exported ONNX model on the whole test set ({cfg.data.data_dir}). Latency: "
        f"onnxruntime CPU, batch 1, {cfg.export.latency_threads} intra-op thread(s) for every model, "
        f"{cfg.export.latency_runs} runs each in interleaved rounds. The control is trained and exported for this "
        "comparison but not served.",
        "",
        "![accuracy vs latency](distillation_tradeoff.png)",
        "",
    ]


def _targets_section(checks: list[tuple[str, str, bool]], profile: str) -> list[str]:
    note = "" if profile == "default" else " (set for the default profile; this is a smaller run)"
    lines = [f"## Targets{note}", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {name} | {measured} | {'yes' if ok else '**no**'} |" for name, measured, ok in checks]
    return [*lines, ""]


def _seeds_section(comparison: dict[str, Any]) -> list[str]:
    kd, none, diff, seeds = comparison["kd"], comparison["none"], comparison["difference"], comparison["seeds"]
    lines = [
        f"## KD vs label-only control ({seeds} seeds)",
        "",
        "Same architecture, recipe and seeds (initialisation and batch order); only the loss differs. Test "
        "accuracy of each seed's best epoch on the validation split (PyTorch), and that validation accuracy. "
        f"Exported: each method's seed with the best validation accuracy (KD seed {kd['exported_seed']}, control "
        f"seed {none['exported_seed']}).",
        "",
        "| seed | KD test | control test | KD - control | KD validation | control validation |",
        "|---|---|---|---|---|---|",
    ]
    rows = zip(kd["test_accuracy"], none["test_accuracy"], kd["val_accuracy"], none["val_accuracy"], strict=True)
    for seed, (a, b, va, vb) in enumerate(rows):
        lines.append(f"| {seed} | {a:.2%} | {b:.2%} | {(a - b) * 100:+.2f} pts | {va:.2%} | {vb:.2%} |")
    lines.append(
        f"| mean ± std | {kd['mean']:.2%} ± {kd['std'] * 100:.2f} | {none['mean']:.2%} ± "
        f"{none['std'] * 100:.2f} | {diff['mean'] * 100:+.2f} ± {diff['std'] * 100:.2f} pts | | |"
    )
    if min(kd["test_accuracy"]) > max(none["test_accuracy"]):
        every = "every KD seed is above every control seed"
    elif min(none["test_accuracy"]) > max(kd["test_accuracy"]):
        every = "every control seed is above every KD seed"
    else:
        every = "the KD and control seeds overlap"
    return [
        *lines,
        "",
        f"KD ahead on {diff['kd_wins']}/{seeds} seeds; {every}.",
        "",
        "![KD vs control per seed](distillation_seeds.png)",
        "",
    ]


def _setup_section(cfg: PipelineConfig, tuning: list[dict[str, float]]) -> list[str]:
    t, s = cfg.teacher, cfg.student
    lines = [
        "## Setup",
        "",
        f"- Data: {cfg.data.val_size:,} images of train (at most {cfg.data.val_fraction:.0%} of it) held out for "
        "validation (model selection, tuning); the test set only for the numbers above.",
        f"- Teacher: architecture `{t.architecture}`, width {t.width}, dense {t.hidden}, dropout {t.dropout}; "
        f"{t.epochs} epochs, AdamW one-cycle (peak lr {t.lr}), batch {t.batch_size}"
        f"{', random flips and 2-pixel shifts' if t.augment else ''}."
        if not cfg.onnx_teacher.path
        else f"- Teacher: `{cfg.onnx_teacher.path}`, an ONNX file brought as it is (not trained here), run in "
        "onnxruntime on the training views; its card records what it takes and its test accuracy.",
        f"- Students: architecture `{s.architecture}`, hidden {'-'.join(str(h) for h in s.hidden)}; {s.epochs} "
        f"epochs, AdamW one-cycle (peak lr {s.lr}), batch {s.batch_size}, on the train split"
        f"{' and its mirror images' if s.hflip_view else ''} with cached teacher logits.",
        f"- KD (Hinton et al. 2015): {s.kd_weight} · T² · KL(teacher_T || student_T) + {1 - s.kd_weight:g} · CE, "
        f"T = {s.temperature}. Control: cross-entropy only.",
    ]
    if tuning:
        lines += [
            "",
            "KD temperature and weight on the validation split (seed 0; `python -m distill_training tune`):",
            "",
            "| T | weight | val accuracy |",
            "|---|---|---|",
        ]
        lines += [f"| {r['temperature']:g} | {r['kd_weight']:g} | {r['val_accuracy']:.2%} |" for r in tuning]
        lines += [
            "",
            f"Configured: T = {s.temperature:g}, weight {s.kd_weight:g}. One seed ranks cells closer than seeds "
            "differ; docs/decisions.md (Training) records how the configured pair was chosen.",
        ]
    return [*lines, ""]


def _timings_section(timings: dict[str, dict[str, float]]) -> list[str]:
    seconds, loads = timings["seconds"], timings.get("load_1min", {})
    lines = ["## Step wall times", "", "| step | minutes | 1-min load average at its end |", "|---|---|---|"]
    lines += [f"| {step} | {sec / 60:.1f} | {_load(loads, step)} |" for step, sec in seconds.items()]
    lines += [
        f"| **total** | {sum(seconds.values()) / 60:.1f} | |",
        "",
        "Each step's time is from the run that built it (later runs skip up-to-date steps). A load average "
        f"above {os.cpu_count()} means the cores were shared with other jobs and times are inflated.",
        "",
    ]
    return lines


def _load(loads: dict[str, float], step: str) -> str:
    return f"{loads[step]:.1f}" if step in loads else "not recorded"
