"""The student and teacher a repository serves: what the service's `student` and `teacher` routes resolve to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelrepo.card import ModelCard
from modelrepo.layout import CARD_FILE, list_model_dirs, read_card


@dataclass(frozen=True)
class Pair:
    student: ModelCard
    teacher: ModelCard


def student_and_teacher(models: Path) -> Pair:
    """The first student by name and the teacher it names; SystemExit with the fix when either is missing."""
    cards = {card.name: card for card in (read_card(d / CARD_FILE) for d in list_model_dirs(models))}
    student = next((c for c in cards.values() if c.role == "student"), None)
    if student is None:
        raise SystemExit(f"the model repository {models} has no student: run `make train` first")
    if student.teacher not in cards:
        raise SystemExit(f"the student {student.name} names teacher {student.teacher}, which is not in {models}")
    return Pair(student, cards[str(student.teacher)])
