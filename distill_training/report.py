"""The distillation report: the served teacher and the exported student against the project's targets, the
accuracy-latency frontier, every method against the control on the same seeds, and what the time budget cut.

Writes `<report_dir>/distillation.md`, `distillation.json` (with the `frontier` list) and three PNG plots
(the frontier against latency and parameters, the methods per seed). Latency is onnxruntime batch-1 p50 with
the same intra-op thread count for every model.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill_training.budget import ComparisonPlan, StudentPlan
from distill_training.config import PipelineConfig
from distill_training.export import Published
from distill_training.frontier import exported
from distill_training.planning import RunPlan
from distill_training.plots import plot_frontier, plot_methods
from distill_training.report_text import markdown
from modelrepo.host import cpu_name

if TYPE_CHECKING:
    from distill_training.pipeline import Built

# The project's targets for the default profile (this machine, from nothing): the served teacher's and the
# exported student's test accuracy; how many times lower batch-1 latency and fewer parameters the student has;
# how far the best distillation method beats the label-only control (mean over seeds, points) and the fraction
# of the control-to-teacher gap it closes; and the whole pipeline's wall time.
TEACHER_ACCURACY, STUDENT_ACCURACY = 0.94, 0.915
LATENCY_RATIO, PARAM_RATIO = 20.0, 10.0
GAIN_POINTS, GAP_CLOSED = 0.8, 0.25
PIPELINE_MINUTES = 15.0


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


@dataclass(frozen=True)
class Target:
    target: str
    measured: str
    met: bool


def _row(label: str, pub: Published, p50_us: float, p90_us: float) -> Row:
    r = pub.record
    return Row(
        label, pub.card.name, r.method, r.architecture, r.test_accuracy, r.parameters, r.size_bytes, p50_us, p90_us
    )


def build_rows(built: Built) -> list[Row]:
    """The served teacher, an ensemble's members, the exported student and the control."""
    lat, spec = built.latency, built.choice.spec
    teacher = built.teachers.served
    rows = [_row("teacher", teacher, lat[teacher.card.name].p50_us, lat[teacher.card.name].p90_us)]
    rows += [
        _row(f"member {i}", m, lat[m.card.name].p50_us, lat[m.card.name].p90_us)
        for i, m in enumerate(built.teachers.members)
    ]
    rows += [
        _row(label, pub, lat[spec].p50_us, lat[spec].p90_us)
        for label, pub in (("student", built.student), ("control", built.control))
    ]
    return rows


def targets(built: Built, total_seconds: float, *, own_teacher: bool = True) -> list[Target]:
    """Each of the project's targets, measured; for a teacher brought as an ONNX file only those that hold for
    any data (latency and size ratios, the best method against the control), not the accuracy and time targets
    set for our Fashion-MNIST models."""
    t, s = exported(built.frontier, "teacher"), exported(built.frontier, "student")
    best = built.comparison["best_method"]
    versus, seeds = built.comparison["versus_control"][best], built.comparison["seeds"]
    checks = [
        Target(
            f"served teacher test accuracy >= {TEACHER_ACCURACY:.1%}",
            f"{t.test_accuracy:.2%}",
            t.test_accuracy >= TEACHER_ACCURACY,
        ),
        Target(
            f"exported student test accuracy >= {STUDENT_ACCURACY:.1%}",
            f"{s.test_accuracy:.2%}",
            s.test_accuracy >= STUDENT_ACCURACY,
        ),
        Target(
            f"student batch-1 latency >= {LATENCY_RATIO:.0f}x lower than the served teacher's",
            f"{t.latency_us / s.latency_us:.1f}x",
            t.latency_us / s.latency_us >= LATENCY_RATIO,
        ),
        Target(
            f"student has >= {PARAM_RATIO:.0f}x fewer parameters",
            f"{t.parameters / s.parameters:.1f}x",
            t.parameters / s.parameters >= PARAM_RATIO,
        ),
        Target(
            f"best distillation method beats the control by >= {GAIN_POINTS} pts (mean of {seeds} seeds)",
            f"{best}: {versus['mean'] * 100:+.2f} ± {versus['std'] * 100:.2f} pts, ahead on {versus['wins']}/{seeds}",
            versus["mean"] * 100 >= GAIN_POINTS,
        ),
        Target(
            f"... and closes >= {GAP_CLOSED:.0%} of the control-to-teacher gap",
            f"{versus['gap_closed']:.0%}",
            versus["gap_closed"] >= GAP_CLOSED,
        ),
        Target(
            f"whole pipeline within {PIPELINE_MINUTES:.0f} minutes",
            f"{total_seconds / 60:.1f} min",
            total_seconds <= PIPELINE_MINUTES * 60,
        ),
    ]
    return checks if own_teacher else checks[2:6]


def environment(precision: str) -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "precision": precision,
        "load_1min": os.getloadavg()[0],
    }


@dataclass(frozen=True)
class Outcome:
    """What the time budget planned, and what the run then did."""

    run_plan: RunPlan
    students: StudentPlan  # the search, fitted once the teacher was done
    comparison: ComparisonPlan  # fitted once the search was done
    teacher_epochs: list[int]  # each member trained (fewer than planned where its deadline shortened it)


def _budget(cfg: PipelineConfig, built: Built, outcome: Outcome) -> dict[str, Any]:
    run_plan, planned = outcome.run_plan, outcome.run_plan.plan.teacher_epochs
    trained = outcome.teacher_epochs  # empty for a teacher brought as an ONNX file
    shortened = [f"teacher epochs {planned} -> {min(trained)} (behind its deadline)"] if trained else []
    return {
        "time_budget_min": cfg.budget.time_budget_min,
        "imported_teacher": bool(cfg.onnx_teacher.path),
        "plan": asdict(run_plan.plan),
        "teacher_epochs": outcome.teacher_epochs,
        "final_students": asdict(outcome.students),
        "comparison": asdict(outcome.comparison),
        "cuts": [
            *run_plan.plan.cuts,
            *(shortened if trained and min(trained) < planned else []),
            *outcome.students.cuts,
            *outcome.comparison.cuts,
        ],
        "speeds": asdict(run_plan.speeds) if run_plan.speeds else None,
        "estimated_latency_us": run_plan.latency_us,
        "reserve_s": run_plan.reserve_s,
        "latency_budget": built.choice.rule,
        "latency_limit_us": built.choice.limit_json,
    }


def write_report(
    report_dir: Path,
    *,
    cfg: PipelineConfig,
    built: Built,
    outcome: Outcome,
    timings: dict[str, dict[str, float]],
    precision: str,
) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    rows = build_rows(built)
    checks = targets(built, sum(timings["seconds"].values()), own_teacher=not cfg.onnx_teacher.path)
    plot_frontier(built.frontier, report_dir / "distillation_frontier.png")
    plot_methods(built.comparison, report_dir / "distillation_seeds.png")
    tuning_file = Path(cfg.run_dir) / "tuning.json"
    tuning = json.loads(tuning_file.read_text()) if tuning_file.is_file() else []
    payload = {
        "profile": cfg.profile,
        "environment": environment(precision),
        "models": [asdict(r) for r in rows],
        "frontier": [e.to_json() for e in built.frontier],
        "comparison": built.comparison,
        "budget": _budget(cfg, built, outcome),
        "timings": timings,
        "tuning": tuning,
        "targets": [asdict(t) for t in checks],
    }
    (report_dir / "distillation.json").write_text(json.dumps(payload, indent=2) + "\n")
    path = report_dir / "distillation.md"
    path.write_text(markdown(cfg, payload))
    return path
