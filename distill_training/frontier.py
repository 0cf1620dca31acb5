"""The accuracy-latency frontier: one typed entry per model the run measured (the served teacher, an ensemble's
members, every candidate student, the best seed of each method on the chosen candidate, the exported student,
the control), so a later step (e.g. quantization) can append its own entries to the same list.

`reports/distillation.json` holds it as `frontier`: a list of objects with exactly the fields of `Entry`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

from distill_training.export import Published

ROLES: Final = ("teacher", "member", "candidate", "student", "control")


@dataclass(frozen=True)
class Entry:
    name: str  # the card's name for a published model, else the candidate's name, method and seed
    role: str  # one of ROLES: teacher (served), member (of the ensemble), candidate, student (exported), control
    architecture: str  # a student's architecture and size (`cnn:16-32`), a teacher's architecture (`ensemble`)
    method: str  # teacher, or the student's training method (`losses.LOSSES`)
    parameters: int
    val_accuracy: float
    test_accuracy: float
    latency_us: float  # onnxruntime, batch 1, one thread: p50
    exported: bool  # published to the served repository

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def published_entry(pub: Published, role: str, architecture: str, latency_us: float, *, exported: bool) -> Entry:
    """An entry measured on a published ONNX file (its accuracies from the card)."""
    r = pub.record
    return Entry(
        pub.card.name,
        role,
        architecture,
        r.method,
        r.parameters,
        pub.val_accuracy,
        r.test_accuracy,
        latency_us,
        exported,
    )


def seed_entries(
    comparison: dict[str, Any], *, name: str, parameters: int, latency_us: float, skip: set[str]
) -> list[Entry]:
    """The seed each compared method would export (best on validation), on the compared candidate; PyTorch
    accuracies. `skip` names the methods that have an entry of their own (the exported student, the control)."""
    spec = comparison["candidate"]
    entries = []
    for method, stats in comparison["methods"].items():
        if method in skip:
            continue
        seed = stats["exported_seed"]
        entries.append(
            Entry(
                f"{name}-{method}-seed{seed}",
                "candidate",
                spec,
                method,
                parameters,
                stats["val_accuracy"][seed],
                stats["test_accuracy"][seed],
                latency_us,
                False,
            )
        )
    return entries


def exported(frontier: list[Entry], role: str) -> Entry:
    """The published entry of a role (teacher, student)."""
    return next(e for e in frontier if e.exported and e.role == role)
