"""What `capacity` measures, as typed values: for each target, every step of offered load (what the load
generator offered and achieved, the latencies, the CPU of the service, of the generator and of the whole
machine), and why the search stopped. Written to `<out>/capacity-raw/capacity.json`; the report reads it back.

A step's verdict and a search's capacity are functions of these records and the run's settings (`judge`,
`capacity`), so the report and the search that chose the next rate always agree.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from pydantic import TypeAdapter

from distill_bench.results.machine import Machine

Traffic = Literal["v2", "mix"]  # a v2 JSON tensor to a model; the locustfile's mix (3 JSON : 1 PNG) to a route
TRAFFIC_NAMES: dict[Traffic, str] = {"v2": "v2 JSON", "mix": "locust mix (3 JSON : 1 PNG)"}
Stop = Literal["resolution", "time", "steps", "generator", "floor"]
STOPS: dict[Stop, str] = {
    "resolution": "the highest passing and lowest failing rates are within the resolution",
    "time": "the search's time ran out",
    "steps": "the search used its most steps",
    "generator": "the load generator, not the service, could not offer more",
    "floor": "no rate down to the floor met the objective",
}


@dataclass(frozen=True)
class CapacityTarget:
    traffic: Traffic
    name: str  # v2: the model's name; mix: the route (student, teacher or cascade)

    @property
    def label(self) -> str:
        return f"{self.name}, {TRAFFIC_NAMES[self.traffic]}"

    @property
    def slug(self) -> str:
        return f"{self.traffic}-{self.name}"


@dataclass(frozen=True)
class CapacitySettings:
    slo_p99_ms: float = 50.0
    step_s: int = 8  # measured seconds per step, after every user has started
    search_s: float = 120.0  # at most, per target, the probe included
    resolution: float = 0.10  # stop once the lowest failing rate is within this fraction of the highest passing
    growth: float = 1.25  # from one passing rate to the next while none has failed
    start_rate: float | None = None  # None: from a closed-loop probe
    probe_s: int = 3
    probe_users: int = 16
    generator_processes: int = 1
    max_generator_processes: int = 0  # more are started only while the generator limits a step; 0: its CPUs
    max_users: int = 1000  # over all generator processes
    # A user sends at most one request per (users / rate) seconds: this many objectives, so that it falls behind
    # its schedule only at latencies far past the objective.
    pacing_slos: float = 3.0
    held_fraction: float = 0.95  # a step holds its rate when it achieves at least this fraction of it
    generator_busy: float = 0.85  # of the cores the generator can use: it is the bottleneck
    service_idle: float = 0.80  # of the cores the service can use: it has CPU to spare
    contended_cores: float = 0.25  # other processes busier than this during a step: the report says so


@dataclass(frozen=True)
class Pinning:
    """Which CPUs each side ran on (taskset); None: not pinned, free to use any of the machine's."""

    service: list[int] | None
    generator: list[int] | None

    def service_cores(self, machine_cores: int) -> int:
        return len(self.service) if self.service else machine_cores

    def generator_cores(self, machine_cores: int) -> int:
        return len(self.generator) if self.generator else machine_cores


@dataclass(frozen=True)
class Step:
    """One offered rate for `step_s` seconds: what locust saw and what /proc says each side used."""

    offered_per_s: float
    processes: int  # locust processes
    users: int
    rate_per_user: float
    requests: int  # in the measured window (after every user started)
    failures: int  # non-2xx answers and requests that got none
    window_s: float
    p50_ms: float  # locust's, rounded as locust rounds (to 1 ms below 100 ms)
    p99_ms: float
    max_ms: float
    service_cores: float  # mean cores busy over the window
    generator_cores: float
    machine_cores: float  # the whole machine, every process
    service_cpus_busy: float  # the CPUs the service may run on (all when not pinned), every process on them
    # The service's own p99 over the step, from its request histogram (parse to response; NaN in older records).
    service_p99_ms: float = math.nan

    @property
    def achieved_per_s(self) -> float:
        return self.requests / self.window_s if self.window_s > 0 else math.nan

    @property
    def service_cpu_us_per_request(self) -> float:
        return self.service_cores / self.achieved_per_s * 1e6 if self.requests else math.nan

    @property
    def other_cores(self) -> float:
        """What every other process (the bench itself included) kept busy."""
        return max(0.0, self.machine_cores - self.service_cores - self.generator_cores)

    @property
    def others_on_service_cpus(self) -> float:
        """What other processes took of the service's CPUs: time the service could not have had."""
        return max(0.0, self.service_cpus_busy - self.service_cores)


@dataclass(frozen=True)
class Search:
    target: CapacityTarget
    model: str  # the model a v2 target names, or the route a mix target takes
    probe_per_s: float  # closed-loop throughput of the probe (NaN when the start rate was given)
    steps: list[Step]  # in the order they ran
    stopped: Stop
    seconds: float  # wall time of the whole search


@dataclass(frozen=True)
class CapacityRun:
    started: str  # ISO 8601, UTC
    machine: Machine
    settings: CapacitySettings
    pinning: Pinning
    service_env: dict[str, str]  # the settings the service ran with, beyond its defaults
    generator: str  # the load generator and its version
    searches: list[Search]


@dataclass(frozen=True)
class Verdict:
    met: bool  # no failure, p99 within the objective, and the offered rate held
    held: bool
    generator_bound: bool  # the generator, not the service, limited the step
    contended: bool  # other processes took a noticeable share of the machine
    why: str


def judge(step: Step, run: CapacityRun) -> Verdict:
    settings, cores = run.settings, run.machine.cores or 1
    held = step.achieved_per_s >= settings.held_fraction * step.offered_per_s
    generator_limit = min(step.processes, run.pinning.generator_cores(cores))
    busy = step.generator_cores >= settings.generator_busy * generator_limit
    service_limit = run.pinning.service_cores(cores)
    # Idle only where its CPUs had time to spare: a service starved by other processes is not idle.
    idle = max(step.service_cores, step.service_cpus_busy) < settings.service_idle * service_limit
    problems = []
    if step.failures:
        problems.append(f"{step.failures} failed")
    if not step.p99_ms <= settings.slo_p99_ms:
        problems.append(f"p99 {step.p99_ms:.0f} ms > {settings.slo_p99_ms:g} ms")
    if not held:
        problems.append(f"achieved {step.achieved_per_s:.0f}/s of {step.offered_per_s:.0f}/s")
    # The rate not held while the service still answered within the objective: had it been the bottleneck, its
    # queue would have grown past it (each user holds at most one request, `pacing_slos` objectives apart).
    within = step.p99_ms <= settings.slo_p99_ms
    # The client's p99 past the objective while the service answered within it and had CPU to spare: the time was
    # added outside the service (the generator's own scheduling, or the kernel between the two). Idle matters: a
    # saturated service's requests wait before its histogram starts timing them.
    outside = not within and step.service_p99_ms <= settings.slo_p99_ms and idle
    generator_bound = busy or (not held and (idle or within)) or outside
    contended = max(step.other_cores, step.others_on_service_cpus) >= settings.contended_cores
    if contended and problems:
        problems.append(f"other processes busy ({step.other_cores:.2f} cores)")
    if generator_bound:
        if busy:
            problems.append(f"generator busy ({step.generator_cores:.2f} of {generator_limit} cores)")
        elif outside:
            problems.append(
                f"added outside the service: its own p99 {step.service_p99_ms:.1f} ms, its CPU not saturated"
            )
        else:
            problems.append("the generator fell behind: " + ("the service had idle CPU" if idle else "p99 was met"))
    met = not step.failures and step.p99_ms <= settings.slo_p99_ms and held
    return Verdict(met, held, generator_bound, contended, "; ".join(problems) or "met")


@dataclass(frozen=True)
class Capacity:
    per_s: float  # the highest offered rate that met the objective; 0 when none did
    step: Step | None
    lower_bound: bool  # the service may serve more: the search could not show where it stops
    why: str  # why it is a lower bound ("" when not)


def capacity(search: Search, run: CapacityRun) -> Capacity:
    verdicts = [(step, judge(step, run)) for step in search.steps]
    passing = [step for step, verdict in verdicts if verdict.met]
    best = max(passing, key=lambda s: s.offered_per_s, default=None)
    rate = best.offered_per_s if best else 0.0
    failed_above = [(s, v) for s, v in verdicts if not v.met and s.offered_per_s > rate]
    if any(v.generator_bound for _, v in failed_above) and not any(not v.generator_bound for _, v in failed_above):
        why = "the load generator, not the service, limited every faster step"
    elif best is None and search.stopped != "floor":
        why = f"no rate tried met the objective before the search stopped ({STOPS[search.stopped]})"
    elif not failed_above and search.stopped != "floor":
        why = f"no faster step failed before the search stopped ({STOPS[search.stopped]})"
    else:
        return Capacity(rate, best, False, "")
    return Capacity(rate, best, True, why)


_ADAPTER: TypeAdapter[CapacityRun] = TypeAdapter(CapacityRun)
RUN_FILE = "capacity.json"


def write_capacity_run(run: CapacityRun, raw: Path) -> Path:
    raw.mkdir(parents=True, exist_ok=True)
    path = raw / RUN_FILE
    path.write_text(json.dumps(asdict(run), indent=2) + "\n")
    return path


def read_capacity_run(path: Path) -> CapacityRun:
    """A run written by `write_capacity_run` (NaN kept: a step nothing answered has NaN latencies)."""
    return _ADAPTER.validate_python(json.loads(path.read_text()))
