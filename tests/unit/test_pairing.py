"""The rule choosing the friendly routes' student and teacher from the repository's cards and the settings."""

from __future__ import annotations

from typing import Any

import pytest

from modelrepo.card import ModelCard, Quantization
from service.pairing import RouteChoice, RouteRole, resolve_pair

SHA = "0" * 64


def card(name: str, role: str, teacher: str | None = None, quantized: bool = False) -> ModelCard:
    fields: dict[str, Any] = {
        "name": name,
        "role": role,
        "teacher": teacher,
        "labels": ["a", "b"],
        "input": {"name": "x", "shape": [-1, 1, 2, 2]},
        "output": {"name": "y", "shape": [-1, 2]},
        "preprocessing": {"height": 2, "width": 2, "mean": [0.0], "std": [1.0]},
        "versions": {1: {"sha256": SHA, "size_bytes": 1, "parameters": 1, "test_accuracy": 0.5, "method": "kd"}},
    }
    if quantized:
        fields["quantization"] = Quantization(
            method="dynamic", fp32_model="s", fp32_accuracy=0.5, int8_accuracy=0.5, max_drop=0.01
        )
    return ModelCard.model_validate(fields)


def cards(*items: ModelCard) -> dict[str, ModelCard]:
    return {c.name: c for c in items}


def test_one_teacher_and_its_one_student() -> None:
    pair = resolve_pair(cards(card("t", "teacher"), card("s", "student", "t")), None, None)
    assert pair.student == RouteChoice("s") and pair.teacher == RouteChoice("t")


def test_only_students_of_the_teacher_are_candidates() -> None:
    repo = cards(card("t", "teacher"), card("s", "student", "t"), card("other", "student", "elsewhere"))
    assert resolve_pair(repo, None, None).student == RouteChoice("s")


def test_quantized_copies_are_not_candidates_but_a_setting_may_name_one() -> None:
    repo = cards(card("t", "teacher"), card("a-int8", "student", "t", quantized=True), card("s", "student", "t"))
    assert resolve_pair(repo, None, None).student == RouteChoice("s")
    assert resolve_pair(repo, "a-int8", None).student == RouteChoice("a-int8")


@pytest.mark.parametrize(
    ("repo", "role", "setting"),
    [
        (cards(card("t", "teacher"), card("s1", "student", "t"), card("s2", "student", "t")), "student", "STUDENT"),
        (cards(card("t1", "teacher"), card("t2", "teacher"), card("s", "student", "t1")), "teacher", "TEACHER"),
    ],
)
def test_several_candidates_and_no_setting_name_the_setting(
    repo: dict[str, ModelCard], role: RouteRole, setting: str
) -> None:
    choice = resolve_pair(repo, None, None)[role]
    assert choice.model is None and choice.status == 503 and f"DISTILL_{setting}" in choice.problem


def test_the_student_setting_decides_the_teacher() -> None:
    repo = cards(card("t1", "teacher"), card("t2", "teacher"), card("s", "student", "t2"))
    pair = resolve_pair(repo, "s", None)
    assert pair.teacher == RouteChoice("t2") and pair.student == RouteChoice("s")


def test_a_teacher_named_by_the_students_but_absent_is_still_chosen_by_name() -> None:
    pair = resolve_pair(cards(card("s", "student", "gone")), None, None)
    assert pair.teacher == RouteChoice("gone") and pair.student == RouteChoice("s")


def test_nothing_to_choose_is_404() -> None:
    pair = resolve_pair({}, None, None)
    assert pair.student.status == 404 and pair.teacher.status == 404 and pair.student.model is None
