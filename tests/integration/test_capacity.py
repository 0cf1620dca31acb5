"""`python -m distill_bench capacity` for real: the quick models served, locust's paced users against them, a
search that finds a rate within its time bound, and a load generator too small for the rate asked detected."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from distill_bench.results.capacity import RUN_FILE, CapacityRun, capacity, judge, read_capacity_run
from distill_bench.runs.capacity_search import STEP_OVERHEAD_S

ROOT = Path(__file__).resolve().parents[2]
SLO_MS = 500  # generous: this checks the search on a shared 2-core machine, not the models' speed


def run_capacity(build: Path, out: Path, *options: str) -> CapacityRun:
    command = [sys.executable, "-m", "distill_bench", "capacity", "--models", str(build / "models"), "--out", str(out)]
    command += ["--slo-p99-ms", str(SLO_MS), "--step-seconds", "2", *options]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert f"capacity report: {out / 'capacity.md'}" in result.stdout
    return read_capacity_run(out / "capacity-raw" / RUN_FILE)


def test_the_search_finds_a_rate_within_its_time_bound(quick_build: Path, tmp_path: Path) -> None:
    bound_s = 25.0
    run = run_capacity(
        quick_build, tmp_path, "--targets", "v2:student,mix:cascade", "--search-seconds", str(bound_s),
        "--start-rate", "40",
    )  # fmt: skip
    assert [s.target.label for s in run.searches] == ["fmnist-student, v2 JSON", "cascade, locust mix (3 JSON : 1 PNG)"]
    if len(os.sched_getaffinity(0)) >= 2:  # the service on its own CPU, locust on the others
        service = run.pinning.service
        assert service is not None and len(service) == 1 and service[0] not in (run.pinning.generator or [])
    for search in run.searches:
        assert search.seconds <= bound_s + STEP_OVERHEAD_S, search.seconds  # a step starts only if it can end in time
        found = capacity(search, run)
        assert found.per_s >= 40 and found.step is not None, [judge(s, run).why for s in search.steps]
        assert found.step.requests > 0 and found.step.failures == 0 and found.step.p99_ms <= SLO_MS
        for step in search.steps:  # every side's CPU measured over the step's window
            assert step.service_cores > 0 and step.generator_cores > 0 and step.machine_cores > 0
            assert step.window_s >= 1.5  # about --step-seconds: locust's users may take a while to start
            assert 0 < step.service_p99_ms <= step.p99_ms + 1  # the service's own p99, inside what locust saw
    report = (tmp_path / "capacity.md").read_text()
    assert f"| fmnist-student, v2 JSON | {'>= ' if capacity(run.searches[0], run).lower_bound else ''}" in report
    assert (tmp_path / "capacity.png").stat().st_size > 0


def test_a_load_generator_too_small_for_the_rate_is_detected(quick_build: Path, tmp_path: Path) -> None:
    # One locust user, one request at a time, cannot offer 2000 requests/s to anything behind HTTP.
    run = run_capacity(
        quick_build, tmp_path, "--targets", "v2:student", "--search-seconds", "20", "--start-rate", "2000",
        "--max-users", "1", "--max-generator-processes", "1",
    )  # fmt: skip
    (search,) = run.searches
    first = search.steps[0]
    assert first.users == 1 and first.offered_per_s == 2000
    verdict = judge(first, run)
    assert verdict.generator_bound and not verdict.held, verdict.why
    assert search.stopped == "generator"
    assert capacity(search, run).lower_bound
    assert "the load generator, not the service, limited every faster step" in (tmp_path / "capacity.md").read_text()
