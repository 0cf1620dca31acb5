"""The speedup report's numbers, on a recorded demo run (tiny models): scrapes, locust's JSON and CPU times."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from distill_bench.reports.speedup import write_report

RAW = Path(__file__).parent / "data" / "speedup_raw"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    raw = tmp_path_factory.mktemp("raw")
    shutil.copytree(RAW, raw, dirs_exist_ok=True)
    out = tmp_path_factory.mktemp("out")
    summary = write_report(raw, out)
    summary["out"] = out
    return summary


def _student(report: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in report["results"] if r["role"] == "student")


def test_online_accuracy_is_correct_over_labeled_between_scrapes(report: dict[str, Any]) -> None:
    student = _student(report)
    # student_after.prom: labeled 2165, correct 217; student_before.prom has neither yet.
    assert student["labeled"] == 2165
    assert student["online_accuracy"] == pytest.approx(217 / 2165)
    assert student["offline_accuracy"] == 0.85  # the card in run.json


def test_compute_quantiles_interpolate_the_histogram_delta(report: dict[str, Any]) -> None:
    student = _student(report)
    # 914 runs: 821 in (25 us, 50 us], 71 in (50, 75], 16 in (75, 100] ... by hand:
    # p50: rank 457 -> 25 + 25 * 457 / 821 us; p99: rank 904.86 -> 75 + 25 * (904.86 - 892) / 16 us.
    assert student["compute_p50_ms"] == pytest.approx((25 + 25 * 457 / 821) / 1e3)
    assert student["compute_p99_ms"] == pytest.approx((75 + 25 * (904.86 - 892) / 16) / 1e3)


def test_load_and_cost_come_from_locust_and_the_cpu_clock(report: dict[str, Any]) -> None:
    student = _student(report)
    assert (student["requests"], student["failures"]) == (1601 + 564, 0)
    # first request start to last request end, from student.json
    assert student["requests_per_s"] == pytest.approx(2165 / (1795925119.8868108 - 1795925117.3124437))
    assert student["cpu_ms_per_1000"] == pytest.approx(1.68 * 1e3 / 2165 * 1000)


def test_speedups_are_teacher_over_student(report: dict[str, Any]) -> None:
    teacher = next(r for r in report["results"] if r["role"] == "teacher")
    student = _student(report)
    assert report["speedup"]["compute_p50"] == pytest.approx(teacher["compute_p50_ms"] / student["compute_p50_ms"])
    assert report["speedup"]["throughput"] == pytest.approx(student["requests_per_s"] / teacher["requests_per_s"])


def test_report_files_are_written(report: dict[str, Any]) -> None:
    out: Path = report["out"]
    for name in ("speedup.md", "speedup.json", "speedup_latency_cdf.png", "speedup_accuracy_latency.png"):
        assert (out / name).stat().st_size > 0
    assert "| tiny-student | student | 85.00 % | 10.02 % | 2165 |" in (out / "speedup.md").read_text()
