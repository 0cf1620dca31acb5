"""The capacity report's numbers, hand-checked on two recorded runs of the quick models (tests/unit/data/
capacity_raw): a search that found where the service stops, and one whose generator was starved of users."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from distill_bench.reports.capacity import headline, write_capacity_report
from distill_bench.reports.speedup import write_report
from distill_bench.results.capacity import CapacityRun, capacity, judge, read_capacity_run

DATA = Path(__file__).parent / "data"
RUN = read_capacity_run(DATA / "capacity_raw" / "capacity.json")  # student, then teacher; p99 <= 20 ms
STARVED = read_capacity_run(DATA / "capacity_raw" / "generator_bound.json")  # --max-users 1 --start-rate 2000


def test_capacity_is_the_fastest_step_that_met_the_objective() -> None:
    student, teacher = RUN.searches
    found = capacity(student, RUN)
    # Steps at 300 (p99 31 ms), 150 (420 ms), 75, 112.5 (40 ms), 93.75, 103.125 req/s: the last passed, and
    # 112.5 failed within 10% of it.
    assert found.per_s == 103.125
    assert not found.lower_bound
    assert student.stopped == "resolution"
    assert found.step is not None
    # 277 requests in 2.6458 s; the service kept 0.0544 cores busy meanwhile.
    assert found.step.achieved_per_s == pytest.approx(277 / 2.6457791328430176)
    assert found.step.service_cpu_us_per_request == pytest.approx(
        0.054415386423018255 / (277 / 2.6457791328430176) * 1e6
    )
    # The teacher passed up to 915.5 req/s and failed at 1144.4 (p99 42 ms) for the service, not the generator.
    assert capacity(teacher, RUN).per_s == pytest.approx(915.52734375)
    assert not capacity(teacher, RUN).lower_bound


def test_a_step_fails_on_p99_and_says_why() -> None:
    step = RUN.searches[0].steps[3]  # 112.5 req/s, p99 40 ms
    verdict = judge(step, RUN)
    assert (verdict.met, verdict.held, verdict.generator_bound) == (False, True, False)
    assert verdict.why.startswith("p99 40 ms > 20 ms")


def test_latency_added_outside_an_idle_service_is_the_generators() -> None:
    # 112.5 req/s, p99 40 ms > 20 ms; the service kept 0.06 cores busy, its CPU (with the others on it) 1.0.
    step = RUN.searches[0].steps[3]
    assert not judge(step, RUN).generator_bound  # older records have no service-side p99: judged as before
    assert not judge(dataclasses.replace(step, service_p99_ms=3.0), RUN).generator_bound  # its CPU was taken
    fast_inside = dataclasses.replace(step, service_p99_ms=3.0, service_cpus_busy=0.1)
    verdict = judge(fast_inside, RUN)
    assert (verdict.met, verdict.held, verdict.generator_bound) == (False, True, True)
    assert "added outside the service: its own p99 3.0 ms" in verdict.why
    assert not judge(dataclasses.replace(step, service_p99_ms=35.0), RUN).generator_bound  # slow inside too
    saturated = dataclasses.replace(fast_inside, service_cores=0.95, service_cpus_busy=0.95)
    assert not judge(saturated, RUN).generator_bound  # its requests may have waited before being timed


def test_a_generator_that_cannot_offer_the_rate_is_detected() -> None:
    (search,) = STARVED.searches
    (step,) = search.steps
    verdict = judge(step, STARVED)
    # One user cannot offer 2000 req/s: 769 in 2.22 s (346/s), while the service answered within p99.
    assert not verdict.held and verdict.generator_bound
    assert "the generator fell behind" in verdict.why
    assert search.stopped == "generator"  # one generator process allowed: no more to add
    found = capacity(search, STARVED)
    assert (found.per_s, found.lower_bound) == (0.0, True)


def test_the_headline_compares_cores_for_the_same_objective() -> None:
    # 915.53 / 103.125 = 8.878: on that (busy) machine the teacher needed fewer cores than the student.
    assert "one core serves 103 fmnist-student req/s vs 916 fmnist-teacher req/s: 8.88x more cores" in headline(RUN)


def _report(run: CapacityRun, out: Path) -> str:
    write_capacity_report(run, out)
    return (out / "capacity.md").read_text()


def test_the_report_writes_every_figure_from_the_raw_records(tmp_path: Path) -> None:
    text = _report(RUN, tmp_path)
    assert "| fmnist-student, v2 JSON | 103 | 6 | 520 | 0.05 |" in text
    # The 112.5 req/s step: 273 requests in 2.3796 s achieved; ceil(112.5/s x 3 objectives x 20 ms) = 7 users.
    assert "| 113 | 115 | 7 | 1 | 0 | 2 | 40 | n/a | 0.06 | 520 |" in text  # no service-side p99 then
    assert "pinned to CPU [0] (taskset)" in text
    summary = json.loads((tmp_path / "capacity.json").read_text())
    assert summary["capacity"]["v2-fmnist-student"]["per_s"] == 103.125
    assert (tmp_path / "capacity.png").stat().st_size > 0
    assert "| fmnist-student, v2 JSON | >= 0 |" in _report(STARVED, tmp_path / "starved")


def test_the_speedup_report_leads_with_the_capacity(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(DATA / "speedup_raw", raw)
    summary = write_report(raw, tmp_path, RUN)
    headings = [line for line in (tmp_path / "speedup.md").read_text().splitlines() if line.startswith("## ")]
    assert headings[:3] == [
        "## Capacity at p99 <= 20 ms (open loop)",
        "## The same closed-loop load: 4 locust users, each sending as soon as answered",
        "## Compute only: the onnxruntime runs",
    ]
    assert summary["capacity"]["headline"] == headline(RUN)


def test_a_search_that_stopped_before_any_rate_passed_is_no_zero() -> None:
    student = RUN.searches[0]
    cut_short = dataclasses.replace(student, steps=student.steps[:1], stopped="time")  # 300 req/s failed, then time
    found = capacity(cut_short, RUN)
    assert (found.per_s, found.lower_bound) == (0.0, True)
    assert found.why.startswith("no rate tried met the objective")
