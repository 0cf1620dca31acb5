"""`make bench`: every target measured side by side in one run, with one load generator (wrk) and one request.

Targets: the floor (a raw ASGI app answering a constant), onnxruntime called in-process (the model's own limit),
and the service with the student and the teacher, JSON and binary bodies, batching on and off, and the student
again with several uvicorn worker processes. Each HTTP target is loaded at 1, 8, 32 and 64 connections;
1 connection is the sequential latency.

The bench starts each service with the settings it states (`service_env`), never the service's defaults, so a
change of default cannot change what it measures unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from distill_bench.drivers.wrk import Request
from distill_bench.pair import student_and_teacher
from distill_bench.results.bench import (
    BODIES,
    FLOOR,
    ROLES,
    BenchRun,
    Body,
    ServiceRss,
    Target,
    TargetResult,
    WorkersRss,
)
from distill_bench.results.machine import this_machine
from distill_bench.runs.bodies import infer_requests, model_input
from distill_bench.runs.in_process import in_process
from distill_bench.runs.sweeps import Sweep, counted, plain
from distill_bench.samples import load_test_images
from distill_bench.servers.floor import serve_floor
from distill_bench.servers.process import RunningService, ensure_open_files
from distill_bench.servers.procfs import rss_mb
from distill_bench.servers.service import serve, wait_workers
from modelrepo.card import ModelCard, Role
from modelrepo.dataset import DEFAULT_DATA_DIR
from modelrepo.layout import model_path

CONNECTIONS = (1, 8, 32, 64)
OVERLOAD = (256, 1024)  # connections far past what the student saturates at: shedding, and order of service
MAX_BATCH_SIZE = 32  # rows per onnxruntime run with batching on; off is 1
WORKERS = 2


@dataclass(frozen=True)
class BenchSettings:
    models: Path
    out: Path
    duration_s: int = 5
    connections: tuple[int, ...] = CONNECTIONS
    data_dir: str = DEFAULT_DATA_DIR


def service_env(batching: bool, workers: int) -> dict[str, str]:
    """The settings the bench runs the service with."""
    return {"DISTILL_MAX_BATCH_SIZE": str(MAX_BATCH_SIZE if batching else 1), "DISTILL_WORKERS": str(workers)}


@dataclass(frozen=True)
class _Plan:
    """What every target needs: the models, the request each one is sent, and how long each wrk run lasts."""

    models: dict[Role, str]  # role -> model name
    requests: dict[tuple[Role, Body], Request]
    settings: BenchSettings

    def sweep(self, service: RunningService, connections: tuple[int, ...] | None = None) -> Sweep:
        return Sweep(service.url, connections or self.settings.connections, self.settings.duration_s)

    def measure(
        self, service: RunningService, pids: list[int], target: Target, connections: tuple[int, ...] | None = None
    ) -> TargetResult:
        request = self.requests[(target.role, target.body)]
        return counted(self.sweep(service, connections), pids, self.models[target.role], target, request)


def _one_worker(plan: _Plan, batching: bool, overload: bool) -> tuple[list[TargetResult], float]:
    """Student and teacher, each body, on one service; with batching on also the overload, when the open-file
    limit allows it. Returns the results and the service's RSS (MiB) after its load."""
    log = plan.settings.out / "bench-raw" / f"service-batching-{'on' if batching else 'off'}.log"
    with serve(plan.settings.models, log, env=service_env(batching, 1)) as service:
        results = [
            plan.measure(service, [service.pid], Target("service", role, body, batching=batching))
            for role in ROLES
            for body in BODIES
        ]
        if batching and overload:
            far = Target("service", "student", "json", load="overload")
            results.append(plan.measure(service, [service.pid], far, OVERLOAD))
        return results, rss_mb(service.pid)


def _workers(plan: _Plan) -> tuple[list[TargetResult], WorkersRss]:
    """The student under several worker processes; RSS of the parent (no models) and of each worker."""
    log = plan.settings.out / "bench-raw" / f"service-{WORKERS}-workers.log"
    with serve(plan.settings.models, log, env=service_env(True, WORKERS)) as service:
        pids = [service.pid, *wait_workers(service.log, WORKERS)]
        results = [plan.measure(service, pids, Target("service", "student", body, workers=WORKERS)) for body in BODIES]
        return results, WorkersRss(parent=rss_mb(service.pid), workers=[rss_mb(pid) for pid in pids[1:]])


def run_bench(settings: BenchSettings) -> BenchRun:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    pair = student_and_teacher(settings.models)
    cards: dict[Role, ModelCard] = {"student": pair.student, "teacher": pair.teacher}
    pixels = load_test_images(settings.data_dir, 1)[0][0]  # (28, 28)
    inputs = {role: model_input(card, pixels) for role, card in cards.items()}
    requests = {
        (role, body): r for role, card in cards.items() for body, r in infer_requests(card, inputs[role]).items()
    }
    plan = _Plan({role: card.name for role, card in cards.items()}, requests, settings)
    print("in-process onnxruntime ...", flush=True)
    onnx = {role: model_path(settings.models, card.name, card.latest_version) for role, card in cards.items()}
    limits = {
        role: in_process(onnx[role], card.input.name, inputs[role], MAX_BATCH_SIZE) for role, card in cards.items()
    }
    with serve_floor(settings.out / "bench-raw" / "floor.log") as floor:
        targets = [plain(plan.sweep(floor), FLOOR, requests[(FLOOR.role, FLOOR.body)])]
    overload = ensure_open_files(4 * max(OVERLOAD))  # before any service starts: they inherit the limit
    if not overload:
        print(f"no overload runs: they need {4 * max(OVERLOAD)} open files, above the hard limit (ulimit -Hn)")
    on, rss_on = _one_worker(plan, True, overload)
    off, rss_off = _one_worker(plan, False, overload)
    several, rss_workers = _workers(plan)
    return BenchRun(
        started=started,
        machine=this_machine(),
        duration_s=settings.duration_s,
        max_batch_size=MAX_BATCH_SIZE,
        targets=[*targets, *on, *off, *several],
        in_process=limits,
        rss_mb_after_load=ServiceRss(on=rss_on, off=rss_off),
        workers=WORKERS,
        rss_mb_workers=rss_workers,
        models=plan.models,
    )
