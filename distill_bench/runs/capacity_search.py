"""The search for the highest offered rate that meets the latency objective: up by `growth` while steps pass,
then halving the gap between the highest passing and the lowest failing rate, within a time bound.

A step the load generator could not drive (`Verdict.generator_bound`) says nothing about the service: it is
run again with one more generator process while the run allows more, else the search stops there and the
capacity is reported as a lower bound.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from distill_bench.results.capacity import CapacityRun, Step, Stop, judge

MAX_STEPS = 16
MIN_RATE = 1.0  # requests/s: below this, no rate meets the objective
STEP_OVERHEAD_S = 5.0  # locust's start, its users' ramp and its stop around a step's measured seconds

Measure = Callable[[float, int], Step]  # (offered rate, generator processes) -> the step


@dataclass
class _Bracket:
    passed: float | None = None  # highest rate that met the objective
    failed: float | None = None  # lowest rate that did not

    def next_rate(self, rate: float, growth: float) -> float:
        if self.failed is None:
            return rate * growth
        if self.passed is None:
            return rate / 2
        return (self.passed + self.failed) / 2

    def narrow(self, resolution: float) -> bool:
        return self.passed is not None and self.failed is not None and self.failed <= self.passed * (1 + resolution)


def search_rates(
    measure: Measure, start: float, run: CapacityRun, deadline: float, clock: Callable[[], float] = time.monotonic
) -> tuple[list[Step], Stop]:
    """Steps from `start` until the bracket is narrow enough, the generator is the limit, no rate above the floor
    passes, or the next step would end past `deadline` (a `clock` time)."""
    settings = run.settings
    steps: list[Step] = []
    bracket, rate, processes = _Bracket(), start, settings.generator_processes
    while True:
        if len(steps) >= MAX_STEPS:
            return steps, "steps"
        if clock() + settings.step_s + STEP_OVERHEAD_S > deadline:
            return steps, "time"
        step = measure(rate, processes)
        steps.append(step)
        verdict = judge(step, run)
        print(f"    {rate:8.1f}/s offered: {verdict.why}", flush=True)
        if not verdict.met and verdict.generator_bound:
            if processes >= settings.max_generator_processes:
                return steps, "generator"
            processes += 1
            continue
        if verdict.met:
            bracket.passed = max(rate, bracket.passed or 0.0)
        else:
            bracket.failed = min(rate, bracket.failed or math.inf)
        if bracket.narrow(settings.resolution):
            return steps, "resolution"
        rate = bracket.next_rate(rate, settings.growth)
        if rate < MIN_RATE:
            return steps, "floor"
