"""Every distillation method against the label-only control on the same seeds: the summary the CLI prints and
the report shows, and the rule that picks the seed to export."""

from __future__ import annotations

import statistics
from typing import Any

from distill_training.losses import CONTROL
from distill_training.train import StudentResult


def best_seed(val_accuracies: list[float]) -> int:
    """The seed to export: the best validation accuracy, the lowest seed on a tie. KD students differ by a few
    tenths of a point between seeds, and even between runs (teacher logits computed twice differ slightly), so
    choosing one is model selection, done on the validation split like every other choice."""
    return val_accuracies.index(max(val_accuracies))


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def gap_closed(method_mean: float, control_mean: float, teacher: float) -> float:
    """The fraction of the control-to-teacher gap a method closes (1: as good as the teacher; < 0: worse than
    the control); 0 where the control is already as good as the teacher."""
    gap = teacher - control_mean
    return (method_mean - control_mean) / gap if gap > 0 else 0.0


def _versus(method: list[float], control: list[float], teacher: float) -> dict[str, Any]:
    diffs = [m - c for m, c in zip(method, control, strict=True)]
    return {
        "per_seed": diffs,
        "mean": statistics.fmean(diffs),
        "std": _spread(diffs),
        "wins": sum(d > 0 for d in diffs),
        "every_above_every_control": min(method) > max(control),
        "gap_closed": gap_closed(statistics.fmean(method), statistics.fmean(control), teacher),
    }


def summarise(
    runs: dict[str, list[StudentResult]], *, candidate: str, teacher_accuracy: float, student: dict[str, Any]
) -> dict[str, Any]:
    """Per method (seeds 0..n-1 each, the control `none` among them): test and validation accuracy, the seed
    each would export, mean and spread; per distillation method, the per-seed difference from the control and
    the fraction of the control-to-teacher gap it closes. `student` is the students' config, recorded with it."""
    methods: dict[str, Any] = {}
    for method, results in runs.items():
        accs = [r.test_accuracy for r in results]
        methods[method] = {
            "test_accuracy": accs,
            "val_accuracy": [r.val_accuracy for r in results],
            "exported_seed": best_seed([r.val_accuracy for r in results]),
            "mean": statistics.fmean(accs),
            "std": _spread(accs),
        }
    control = methods[CONTROL]["test_accuracy"]
    versus = {
        m: _versus(stats["test_accuracy"], control, teacher_accuracy) for m, stats in methods.items() if m != CONTROL
    }
    return {
        "seeds": len(control),
        "candidate": candidate,
        "teacher_test_accuracy": teacher_accuracy,
        "student": student,
        "methods": methods,
        "versus_control": versus,
        "best_method": max(versus, key=lambda m: versus[m]["mean"]),
    }
