"""Histogram arithmetic over scrapes: deltas, sums and PromQL-style quantiles."""

from __future__ import annotations

import math

import pytest

from distill_bench.scrape import buckets, delta, parse_samples, quantile, total

BEFORE = """\
# TYPE distill_inference_duration_seconds histogram
distill_inference_duration_seconds_bucket{le="0.001",model="s",role="student"} 10
distill_inference_duration_seconds_bucket{le="0.002",model="s",role="student"} 10
distill_inference_duration_seconds_bucket{le="+Inf",model="s",role="student"} 10
distill_inference_duration_seconds_count{model="s",role="student"} 10
distill_inference_duration_seconds_sum{model="s",role="student"} 0.005
# TYPE distill_predictions_labeled_total counter
distill_predictions_labeled_total{model="s"} 4
distill_predictions_labeled_total{model="t"} 7
"""

AFTER = """\
# TYPE distill_inference_duration_seconds histogram
distill_inference_duration_seconds_bucket{le="0.001",model="s",role="student"} 60
distill_inference_duration_seconds_bucket{le="0.002",model="s",role="student"} 110
distill_inference_duration_seconds_bucket{le="+Inf",model="s",role="student"} 110
distill_inference_duration_seconds_count{model="s",role="student"} 110
distill_inference_duration_seconds_sum{model="s",role="student"} 0.155
# TYPE distill_predictions_labeled_total counter
distill_predictions_labeled_total{model="s"} 104
distill_predictions_labeled_total{model="t"} 7
"""


def test_delta_counts_only_what_happened_between_scrapes() -> None:
    seen = delta(parse_samples(AFTER), parse_samples(BEFORE))
    assert total(seen, "distill_predictions_labeled_total", model="s") == 100
    assert total(seen, "distill_predictions_labeled_total", model="t") == 0
    assert total(seen, "distill_predictions_labeled_total") == 100


def test_quantile_interpolates_inside_the_bucket_like_promql() -> None:
    seen = delta(parse_samples(AFTER), parse_samples(BEFORE))
    cumulative = buckets(seen, "distill_inference_duration_seconds", model="s")
    assert cumulative == [(0.001, 50.0), (0.002, 100.0), (math.inf, 100.0)]
    # rank 50 of 100 ends the first bucket exactly; rank 75 is halfway through (0.001, 0.002].
    assert quantile(0.5, cumulative) == pytest.approx(0.001)
    assert quantile(0.75, cumulative) == pytest.approx(0.0015)
    assert quantile(0.25, cumulative) == pytest.approx(0.0005)


def test_quantile_of_the_inf_bucket_is_the_largest_finite_bound() -> None:
    assert quantile(0.99, [(0.001, 1.0), (math.inf, 10.0)]) == 0.001


def test_quantile_of_an_empty_histogram_is_nan() -> None:
    assert math.isnan(quantile(0.5, []))
    assert math.isnan(quantile(0.5, [(0.001, 0.0), (math.inf, 0.0)]))
