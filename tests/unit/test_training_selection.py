"""Which student seed is exported (the best on the validation split, never chosen by the test set), and how
every method is summarised against the control."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_training.comparison import best_seed, gap_closed, summarise
from distill_training.train import StudentResult


def test_the_best_validation_seed_is_exported_and_ties_go_to_the_lowest_seed() -> None:
    assert best_seed([0.901, 0.910, 0.904]) == 1
    assert best_seed([0.905, 0.902, 0.905]) == 0
    assert best_seed([0.9]) == 0


def test_the_gap_closed_is_the_share_of_the_control_to_teacher_distance() -> None:
    assert gap_closed(0.91, 0.90, 0.94) == pytest.approx(0.25)
    assert gap_closed(0.94, 0.90, 0.94) == pytest.approx(1.0)
    assert gap_closed(0.89, 0.90, 0.94) == pytest.approx(-0.25)
    assert gap_closed(0.95, 0.95, 0.94) == 0.0  # no gap to close


def results(method: str, tests: list[float], vals: list[float]) -> list[StudentResult]:
    pairs = enumerate(zip(tests, vals, strict=True))
    return [StudentResult(method, s, Path("w.pt"), v, t, 1.0) for s, (t, v) in pairs]


def test_every_method_is_summarised_against_the_control_on_the_same_seeds() -> None:
    runs = {
        "kd": results("kd", [0.91, 0.92, 0.90], [0.90, 0.93, 0.91]),
        "dkd": results("dkd", [0.89, 0.90, 0.91], [0.9, 0.9, 0.9]),
        "none": results("none", [0.90, 0.90, 0.89], [0.89, 0.90, 0.88]),
    }
    summary = summarise(runs, candidate="cnn:16-32", teacher_accuracy=0.94, student={"epochs": 3})
    assert summary["seeds"] == 3 and summary["candidate"] == "cnn:16-32"
    assert summary["methods"]["kd"]["exported_seed"] == 1 and summary["methods"]["dkd"]["exported_seed"] == 0
    kd = summary["versus_control"]["kd"]
    assert kd["per_seed"] == pytest.approx([0.01, 0.02, 0.01]) and kd["wins"] == 3
    assert kd["mean"] == pytest.approx(0.04 / 3)
    assert kd["gap_closed"] == pytest.approx((0.91 - 0.8966666) / (0.94 - 0.8966666), rel=1e-4)
    assert summary["versus_control"]["dkd"]["wins"] == 1 and summary["best_method"] == "kd"
    assert "none" not in summary["versus_control"]
