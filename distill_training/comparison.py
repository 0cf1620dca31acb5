"""KD against the label-only control on the same seeds: the summary the CLI prints and the report shows, and the
rule that picks the seed to export."""

from __future__ import annotations

import statistics
from typing import Any, Final

from distill_training.train import StudentResult

KD: Final = "kd"
CONTROL: Final = "none"


def best_seed(val_accuracies: list[float]) -> int:
    """The seed to export: the best validation accuracy, the lowest seed on a tie. KD students differ by a few
    tenths of a point between seeds, and even between runs (teacher logits computed twice differ slightly), so
    choosing one is model selection, done on the validation split like every other choice."""
    return val_accuracies.index(max(val_accuracies))


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(runs: dict[str, list[StudentResult]], student: dict[str, Any]) -> dict[str, Any]:
    """Per method (`kd`, `none`; seeds 0..n-1 each): test and validation accuracy, the exported seed, mean and
    spread; and the per-seed KD - control difference. `student` is the students' config, recorded with it."""
    seeds = len(runs[KD])
    summary: dict[str, Any] = {"seeds": seeds, "student": student}
    for method, results in runs.items():
        accs = [r.test_accuracy for r in results]
        summary[method] = {
            "test_accuracy": accs,
            "val_accuracy": [r.val_accuracy for r in results],
            "exported_seed": best_seed([r.val_accuracy for r in results]),
            "mean": statistics.fmean(accs),
            "std": _spread(accs),
        }
    kd, control = summary[KD]["test_accuracy"], summary[CONTROL]["test_accuracy"]
    diffs = [k - c for k, c in zip(kd, control, strict=True)]
    summary["difference"] = {
        "per_seed": diffs,
        "mean": statistics.fmean(diffs),
        "std": _spread(diffs),
        "kd_wins": sum(d > 0 for d in diffs),
        "every_kd_above_every_control": min(kd) > max(control),
    }
    return summary
