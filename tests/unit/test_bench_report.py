"""The benchmark's time budget of a lone request: means from the service's metrics, and the report's arithmetic."""

from __future__ import annotations

import math

import pytest

from distill_bench.drivers.wrk import WrkResult
from distill_bench.reports.bench_sections import overload, time_budget
from distill_bench.results.bench import FLOOR, Body, HandlerMeans, Target, TargetResult
from distill_bench.runs.sweeps import handler_means_us
from distill_bench.scrape import delta, parse_samples
from modelrepo.card import Role


def _scrape(requests: int, handler_s: float, queue_s: float, compute_s: float) -> str:
    """The three histograms' _sum and _count, as the service exposes them (one model, one role)."""
    return "\n".join(
        [
            "# TYPE distill_request_duration_seconds histogram",
            f'distill_request_duration_seconds_sum{{endpoint="infer",model="s"}} {handler_s}',
            f'distill_request_duration_seconds_count{{endpoint="infer",model="s"}} {requests}',
            # another endpoint and another model: not ours
            'distill_request_duration_seconds_sum{endpoint="classify",model="s"} 9.0',
            'distill_request_duration_seconds_count{endpoint="classify",model="s"} 3',
            'distill_request_duration_seconds_sum{endpoint="infer",model="t"} 9.0',
            'distill_request_duration_seconds_count{endpoint="infer",model="t"} 3',
            "# TYPE distill_queue_duration_seconds histogram",
            f'distill_queue_duration_seconds_sum{{model="s"}} {queue_s}',
            f'distill_queue_duration_seconds_count{{model="s"}} {requests}',
            "# TYPE distill_inference_duration_seconds histogram",
            f'distill_inference_duration_seconds_sum{{model="s",role="student"}} {compute_s}',
            f'distill_inference_duration_seconds_count{{model="s",role="student"}} {requests}',
            "",
        ]
    )


def test_handler_means_are_per_request_over_one_run_only() -> None:
    before = parse_samples(_scrape(100, 1.0, 0.5, 0.2))
    after = parse_samples(_scrape(1100, 1.2, 0.52, 0.25))  # 1000 requests: 200 ms, 20 ms, 50 ms in all
    means = handler_means_us(delta(after, before), "s")
    assert means == pytest.approx({"handler": 200.0, "queue": 20.0, "compute": 50.0})


def test_a_run_without_requests_has_no_means() -> None:
    same = parse_samples(_scrape(100, 1.0, 0.5, 0.2))
    assert all(math.isnan(v) for v in handler_means_us(delta(same, same), "s").values())


def _run(
    connections: int, *, p50: float, p99: float = 0.0, mean: float = 0.0, requests: int = 0, duration_s: float = 1.0,
    non_2xx: int = 0, socket_errors: int = 0,
) -> WrkResult:  # fmt: skip
    """A wrk run with the figures a test reads; the others stay zero."""
    return WrkResult(connections, requests, duration_s, socket_errors, non_2xx, {50.0: p50, 99.0: p99}, mean)


def _target(target: Target, e2e_p50: float, e2e_mean: float, handler: HandlerMeans | None) -> TargetResult:
    return TargetResult(target, [_run(1, p50=e2e_p50, mean=e2e_mean)], handler_us={1: handler} if handler else {})


def _service(role: Role, body: Body) -> Target:
    return Target("service", role, body)  # batching on, one worker


def test_time_budget_splits_a_lone_request_and_bounds_the_ratio() -> None:
    student = HandlerMeans(handler=200.0, queue=20.0, compute=50.0)
    teacher = HandlerMeans(handler=900.0, queue=20.0, compute=550.0)
    data = [
        _target(FLOOR, 180.0, 200.0, None),
        _target(_service("student", "json"), 400.0, 420.0, student),
        _target(_service("student", "binary"), 380.0, 400.0, student),
        _target(_service("teacher", "json"), 1050.0, 1100.0, teacher),
        _target(_service("teacher", "binary"), 1050.0, 1100.0, teacher),
    ]
    text = "\n".join(time_budget(data))
    # end to end p50, mean, floor, outside the handler (420 - 200), handler, run, queue, our code (200 - 50 - 20)
    assert "| student json batching on | 400 | 420 | 200 | 220 | 200 | 50 | 20 | 130 |" in text
    assert "| teacher json batching on | 1050 | 1100 | 200 | 200 | 900 | 550 | 20 | 330 |" in text
    assert f"**{(200 + 550) / (200 + 50):.2f}**" in text  # the ratio of a service whose own code cost nothing


def test_time_budget_is_left_out_for_a_run_recorded_without_metrics() -> None:
    data = [_target(FLOOR, 1, 1, None), _target(_service("student", "json"), 1, 1, None)]
    assert time_budget(data) == []


def test_overload_compares_the_p99_with_the_fair_wait() -> None:
    # 4000 req/s: a fair wait of 250 ms
    run = _run(1000, requests=20000, duration_s=5.0, non_2xx=300, socket_errors=0, p50=240_000.0, p99=375_000.0)
    far = Target("service", "student", "json", load="overload")
    text = "\n".join(overload([TargetResult(far, [run])]))
    assert "| 1000 | 4000 | 240.0 | 375.0 | 250.0 | 1.50 | 300 | 0 |" in text
    assert overload([]) == []
