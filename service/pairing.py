"""Which models answer the friendly routes: the student and teacher of `route=student|teacher|cascade` and
`/v1/compare`.

The rule, from the cards of every model in the repository (loaded or not):
- the teacher: `DISTILL_TEACHER`; else the teacher of `DISTILL_STUDENT`; else the only teacher; else, with no
  teacher card at all, the teacher every student names;
- the student: `DISTILL_STUDENT`; else the only student distilled from that teacher.
Quantized copies (cards with `quantization` set) are never chosen without a setting. Several candidates and no
setting: no guess; the routes answer 503 naming the setting to set. A chosen model that is down (failed, still
loading, or missing from the repository) makes its routes answer 503 naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modelrepo.card import ModelCard

RouteRole = Literal["student", "teacher"]


@dataclass(frozen=True)
class RouteChoice:
    """The model answering one route, or why none does (`status`: 404 none exists, 503 a setting must choose)."""

    model: str | None
    problem: str = ""
    status: int = 404


@dataclass(frozen=True)
class Pair:
    student: RouteChoice
    teacher: RouteChoice

    def __getitem__(self, role: RouteRole) -> RouteChoice:
        return self.student if role == "student" else self.teacher


def _names(cards: list[ModelCard]) -> str:
    return ", ".join(sorted(c.name for c in cards))


def _teacher(cards: dict[str, ModelCard], student: str | None, teacher: str | None) -> RouteChoice:
    if teacher is not None:
        return RouteChoice(teacher)
    if student is not None and student in cards:
        return RouteChoice(cards[student].teacher)
    candidates = [c for c in cards.values() if c.role == "teacher" and c.quantization is None]
    if len(candidates) == 1:
        return RouteChoice(candidates[0].name)
    if candidates:
        problem = f"several teachers are in the repository ({_names(candidates)}): set DISTILL_TEACHER to choose one"
        return RouteChoice(None, problem, 503)
    named = {c.teacher for c in cards.values() if c.role == "student" and c.quantization is None}
    if len(named) == 1:
        return RouteChoice(named.pop())  # not in the repository, or its card unreadable: down, said so by name
    return RouteChoice(None, "no teacher model is in the repository")


def _student(cards: dict[str, ModelCard], student: str | None, teacher: str | None) -> RouteChoice:
    if student is not None:
        return RouteChoice(student)
    candidates = [
        c for c in cards.values() if c.role == "student" and c.quantization is None and teacher in (None, c.teacher)
    ]
    of = f" distilled from {teacher!r}" if teacher is not None else ""
    if len(candidates) == 1:
        return RouteChoice(candidates[0].name)
    if candidates:
        problem = f"several students{of} are in the repository ({_names(candidates)})"
        return RouteChoice(None, f"{problem}: set DISTILL_STUDENT to choose one", 503)
    return RouteChoice(None, f"no student model{of} is in the repository")


def resolve_pair(cards: dict[str, ModelCard], student: str | None, teacher: str | None) -> Pair:
    """The pair from the cards by name and the `student` and `teacher` settings."""
    chosen_teacher = _teacher(cards, student, teacher)
    return Pair(_student(cards, student, chosen_teacher.model), chosen_teacher)
