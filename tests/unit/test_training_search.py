"""The candidate students: specs parsed into configs with clear errors, and the choice under a latency budget
(the most accurate on validation that meets it; an impossible budget names the fastest candidate)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from distill_training.config import ConfigError, StudentConfig
from distill_training.search import (
    LatencyBudgetError,
    Scored,
    candidate_config,
    candidate_specs,
    choose,
    latency_limit,
)

SCORED = [Scored("mlp:128-128", 0.90, 14.0), Scored("cnn:16-32", 0.915, 15.0), Scored("cnn:32-64", 0.925, 31.0)]


def test_a_spec_sets_the_architecture_and_its_size() -> None:
    base = StudentConfig()
    assert candidate_config(base, "mlp:64-32").hidden == (64, 32)
    assert candidate_config(base, "cnn:8-16-16").channels == (8, 16, 16)
    assert (candidate_config(base, "mobilenet:16x2").width, candidate_config(base, "mobilenet:16x2").depth) == (16, 2)
    assert candidate_config(base, "cnn") == replace(base, architecture="cnn")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("vit:16", "unknown architecture 'vit'; known: mlp, cnn, mobilenet"),
        ("cnn:16x32", "a size for cnn looks like cnn:16-32"),
        ("mobilenet:32", "a size for mobilenet looks like mobilenet:32x2"),
        ("mlp:0", "a size for mlp looks like mlp:128-128"),
    ],
)
def test_a_bad_spec_is_a_config_error_that_shows_the_form(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        candidate_config(StudentConfig(), spec)


def test_student_architecture_narrows_the_search_to_its_candidates() -> None:
    cfg = StudentConfig(candidates=("mlp:64", "cnn:8-16", "cnn:16-32"))
    assert candidate_specs(cfg) == ["mlp:64", "cnn:8-16", "cnn:16-32"]
    assert candidate_specs(replace(cfg, architecture="cnn")) == ["cnn:8-16", "cnn:16-32"]
    assert candidate_specs(replace(cfg, architecture="mobilenet")) == ["mobilenet"]  # at the configured sizes
    with pytest.raises(ConfigError, match=r"unknown student\.architecture 'vit'"):
        candidate_specs(replace(cfg, architecture="vit"))


def test_the_most_accurate_candidate_within_the_budget_is_chosen() -> None:
    assert choose(SCORED, math.inf, "no latency budget").spec == "cnn:32-64"
    assert choose(SCORED, 20.0, "--latency-budget-us 20").spec == "cnn:16-32"
    assert choose(SCORED, 14.5, "--latency-budget-us 14.5").spec == "mlp:128-128"


def test_a_tie_on_validation_goes_to_the_faster_candidate() -> None:
    tied = [Scored("cnn:32-64", 0.92, 31.0), Scored("cnn:16-32", 0.92, 15.0)]
    assert choose(tied, math.inf, "").spec == "cnn:16-32"


def test_an_impossible_budget_names_the_fastest_candidate_and_its_latency() -> None:
    with pytest.raises(LatencyBudgetError) as err:
        choose(SCORED, 5.0, "--latency-budget-us 5")
    message = str(err.value)
    assert "5.0 µs (--latency-budget-us 5)" in message and "the fastest, mlp:128-128, takes 14.0 µs" in message


def test_the_latency_limit_is_the_stricter_of_the_budget_and_the_speedup() -> None:
    assert latency_limit(0.0, 0.0, 500.0) == (math.inf, "no latency budget")
    assert latency_limit(30.0, 0.0, 500.0) == (30.0, "--latency-budget-us 30")
    limit, rule = latency_limit(30.0, 20.0, 500.0)
    assert limit == 25.0 and rule.startswith("--min-speedup 20 over the teacher's 500.0 µs")
    assert latency_limit(20.0, 20.0, 500.0)[0] == 20.0
