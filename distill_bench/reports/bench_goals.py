"""The benchmark's goals, each a ratio of two figures of the same run, so that the machine's speed cancels out."""

from __future__ import annotations

from dataclasses import dataclass

from distill_bench.drivers.wrk import WrkResult
from distill_bench.results.bench import FLOOR, BenchRun, Body, Target

# The student's throughput at 32 connections over the floor's, at least; a binary body skips the JSON parse.
THROUGHPUT_GOALS: dict[Body, float] = {"json": 0.30, "binary": 0.45}
BODY_NAMES: dict[Body, str] = {"json": "JSON", "binary": "binary"}


@dataclass(frozen=True)
class Goal:
    what: str
    ratio: float
    goal: str  # ">= 0.3", "<= 2"
    met: bool


def teacher_runs_32(run: BenchRun) -> tuple[WrkResult, WrkResult]:
    """The teacher's JSON runs at 32 connections, batching on and off."""
    on = run.get(Target("service", "teacher", "json", batching=True)).at(32)
    return on, run.get(Target("service", "teacher", "json", batching=False)).at(32)


def goals(run: BenchRun) -> list[Goal]:
    """Each goal as (what, measured ratio, goal, met); every ratio is from this one run."""
    floor = run.get(FLOOR).at(32).requests_per_s

    def over_floor(body: Body, workers: int) -> float:
        return run.get(Target("service", "student", body, workers=workers)).at(32).requests_per_s / floor

    student_seq = run.get(Target("service", "student", "json")).at(1).latency_us[50.0]
    teacher_seq = run.get(Target("service", "teacher", "json")).at(1).latency_us[50.0]
    on, off = teacher_runs_32(run)
    several = f"{run.workers} workers"
    rows = [
        *(
            (f"student {BODY_NAMES[b]}, 32 connections: throughput / floor", over_floor(b, 1), g)
            for b, g in THROUGHPUT_GOALS.items()
        ),
        *(
            (f"student {BODY_NAMES[b]}, 32 connections, {several}: throughput / floor", over_floor(b, run.workers), g)
            for b, g in THROUGHPUT_GOALS.items()
        ),
        ("teacher p50 / student p50, 1 connection, end to end", teacher_seq / student_seq, 3.0),
        ("teacher, 32 connections: throughput batching on / off", on.requests_per_s / off.requests_per_s, 2.0),
    ]
    result = [Goal(w, r, f">= {g}", r >= g) for w, r, g in rows]
    p99 = on.latency_us[99.0] / off.latency_us[99.0]
    result.append(Goal("teacher, 32 connections: p99 batching on / off", p99, "<= 2", p99 <= 2.0))
    return result
