"""`capacity`: the highest rate each target serves with p99 within the objective, under an open-loop load.

One service (one worker, pinned to its own CPUs by default) serves every target in turn. For each target a short
closed-loop probe gives a first rate, then `capacity_search` steps the offered rate: locust users each paced to
a fixed rate (`PacedLoad`), so the offered load does not fall when the service slows down. Each step records
what locust saw and what /proc says the service, the load generator and the whole machine used.
"""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from distill_bench.drivers.locust import PacedLoad, paced_command, read_stats
from distill_bench.pair import student_and_teacher
from distill_bench.results.capacity import CapacityRun, CapacitySettings, CapacityTarget, Pinning, Search, Step
from distill_bench.results.machine import this_machine
from distill_bench.runs.bodies import infer_requests, model_input
from distill_bench.runs.capacity_search import search_rates
from distill_bench.samples import load_test_images
from distill_bench.scrape import buckets, delta, fetch_metrics, parse_samples, quantile
from distill_bench.servers.cpu_sampler import CpuSampler, Samples, cores_used
from distill_bench.servers.process import RunningService, ensure_open_files, pinned
from distill_bench.servers.service import serve
from modelrepo.dataset import DEFAULT_DATA_DIR
from modelrepo.layout import CARD_FILE, read_card

SERVICE_ENV = {"DISTILL_WORKERS": "1"}
DEFAULT_TARGETS = ("v2:student", "v2:teacher", "mix:student", "mix:teacher", "mix:cascade")
ROUTES = ("student", "teacher", "cascade")
REQUEST_HISTOGRAM = "distill_request_duration_seconds"  # every request, parse to response


@dataclass(frozen=True)
class CapacityPlan:
    models: Path
    out: Path
    targets: tuple[str, ...] = DEFAULT_TARGETS  # "v2:MODEL" (or v2:student / v2:teacher) and "mix:ROUTE"
    settings: CapacitySettings = field(default_factory=CapacitySettings)
    service_cpus: tuple[int, ...] | None = ()  # (): the first available CPU, when there are two or more
    data_dir: str = DEFAULT_DATA_DIR

    @property
    def raw(self) -> Path:
        return self.out / "capacity-raw"


def resolve_targets(plan: CapacityPlan) -> list[CapacityTarget]:
    """Targets as the run names them: v2 ones by model name (`student`/`teacher`: the repository's pair)."""
    pair = student_and_teacher(plan.models)
    roles = {"student": pair.student.name, "teacher": pair.teacher.name}
    targets = []
    for spec in plan.targets:
        traffic, _, name = spec.partition(":")
        if traffic == "v2" and name:
            name = roles.get(name, name)
            if not (plan.models / name / CARD_FILE).is_file():
                raise SystemExit(f"--targets {spec}: no model {name!r} in {plan.models}")
            targets.append(CapacityTarget("v2", name))
        elif traffic == "mix" and name in ROUTES:
            targets.append(CapacityTarget("mix", name))
        else:
            raise SystemExit(f"--targets {spec}: expected v2:MODEL (or v2:student, v2:teacher) or mix:ROUTE {ROUTES}")
    return targets


def pinning(requested: tuple[int, ...] | None) -> Pinning:
    """The service on `requested` CPUs (default: the first available, if there are two or more), the load
    generator on the others; None: nobody pinned."""
    cpus = sorted(os.sched_getaffinity(0))
    if requested is None or (not requested and len(cpus) < 2):
        return Pinning(None, None)
    service = list(requested) if requested else cpus[:1]
    if unknown := set(service) - set(cpus):
        raise SystemExit(f"--service-cpus {sorted(unknown)}: this process may only use CPUs {cpus}")
    rest = [c for c in cpus if c not in service]
    return Pinning(service, rest or None)


def _tags_and_options(target: CapacityTarget, plan: CapacityPlan) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if target.traffic == "mix":
        return (target.name,), ()
    card = read_card(plan.models / target.name / CARD_FILE)
    request = infer_requests(card, model_input(card, load_test_images(plan.data_dir, 1)[0][0]))["json"]
    body = plan.raw / f"{target.slug}.body"
    body.write_bytes(request.body)
    return ("v2",), ("--v2-body", str(body), "--v2-path", request.path)


@dataclass(frozen=True)
class _Driver:
    """Runs locust steps against one target of the running service."""

    plan: CapacityPlan
    service: RunningService
    target: CapacityTarget
    pins: Pinning
    tags: tuple[str, ...]
    options: tuple[str, ...]

    def run(self, load: PacedLoad, name: str) -> Step:
        prefix = self.plan.raw / self.target.slug / name
        prefix.parent.mkdir(parents=True, exist_ok=True)
        command, env = paced_command(self.service.url, prefix, load)
        before = parse_samples(fetch_metrics(self.service.url))
        with CpuSampler() as sampler, (prefix.parent / f"{name}.log").open("wb") as log:
            sampler.watch("service", self.service.pid)
            process = subprocess.Popen(pinned(command, self.pins.generator), stdout=log, stderr=log, env=_env(env))
            sampler.watch("generator", process.pid)
            process.wait(timeout=load.duration_s + 120)
        during = delta(parse_samples(fetch_metrics(self.service.url)), before)
        stats = read_stats(Path(f"{prefix}.json"))
        samples, start, end = sampler.samples, stats.started, stats.ended
        return Step(
            offered_per_s=load.users * load.rate_per_user,
            processes=load.processes,
            users=load.users,
            rate_per_user=load.rate_per_user,
            requests=stats.requests,
            failures=stats.failures,
            window_s=end - start,
            p50_ms=stats.p(0.5),
            p99_ms=stats.p(0.99),
            max_ms=stats.p(1.0),
            service_cores=cores_used(samples["service"], start, end),
            generator_cores=cores_used(samples["generator"], start, end),
            machine_cores=_busy(samples, None, start, end),
            service_cpus_busy=_busy(samples, self.pins.service, start, end),
            service_p99_ms=quantile(0.99, buckets(during, REQUEST_HISTOGRAM)) * 1e3,
        )

    def probe(self) -> float:
        """Closed-loop throughput: a few users, each sending as soon as answered."""
        settings = self.plan.settings
        users = min(settings.probe_users, settings.max_users)
        load = PacedLoad(users, 0.0, settings.probe_s, self.tags, 1, self.options, self.plan.data_dir)
        step = self.run(load, "probe")
        if step.failures or not step.requests:
            log = self.plan.raw / self.target.slug / "probe.log"
            raise RuntimeError(f"{self.target.label}: the probe's {step.failures} of {step.requests} failed; see {log}")
        return step.achieved_per_s

    def step(self, rate: float, processes: int, index: int) -> Step:
        settings = self.plan.settings
        wanted = math.ceil(rate * settings.pacing_slos * settings.slo_p99_ms / 1e3)
        users = max(processes, min(settings.max_users, max(2, wanted)))
        load = PacedLoad(users, rate / users, settings.step_s, self.tags, processes, self.options, self.plan.data_dir)
        return self.run(load, f"step-{index:02d}")


def _busy(samples: dict[str, Samples], cpus: list[int] | None, start: float, end: float) -> float:
    """Mean busy cores of `cpus` (None: every CPU) over the window, whatever process kept them busy."""
    names = [f"cpu{c}" for c in cpus] if cpus else [n for n in samples if n.startswith("cpu")]
    return sum(cores_used(samples[n], start, end) for n in names)


def _env(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}


def _search(driver: _Driver, context: CapacityRun) -> Search:
    settings, started = context.settings, time.monotonic()
    deadline = started + settings.search_s
    print(f"capacity of {driver.target.label} (p99 <= {settings.slo_p99_ms:g} ms):", flush=True)
    probe = math.nan if settings.start_rate else driver.probe()
    start = settings.start_rate or max(1.0, 0.6 * probe)
    index = iter(range(1000))
    steps, stopped = search_rates(lambda r, p: driver.step(r, p, next(index)), start, context, deadline)
    return Search(driver.target, driver.target.name, probe, steps, stopped, time.monotonic() - started)


def run_capacity(plan: CapacityPlan) -> CapacityRun:
    targets = resolve_targets(plan)
    pins = pinning(plan.service_cpus)
    plan.raw.mkdir(parents=True, exist_ok=True)
    ensure_open_files(4 * plan.settings.max_users + 1024)  # a socket per user on each side
    machine = this_machine()
    settings = plan.settings
    if not settings.max_generator_processes:  # as many as the generator has CPUs
        cores = pins.generator_cores(machine.cores or 1)
        settings = dataclasses.replace(settings, max_generator_processes=max(cores, settings.generator_processes))
    context = CapacityRun(
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=machine,
        settings=settings,
        pinning=pins,
        service_env=SERVICE_ENV,
        generator=f"locust {version('locust')}",
        searches=[],
    )
    searches = []
    with serve(plan.models, plan.raw / "service.log", env=SERVICE_ENV, cpus=pins.service) as service:
        for target in targets:
            tags, options = _tags_and_options(target, plan)
            driver = _Driver(dataclasses.replace(plan, settings=settings), service, target, pins, tags, options)
            searches.append(_search(driver, context))
    return dataclasses.replace(context, searches=searches)
