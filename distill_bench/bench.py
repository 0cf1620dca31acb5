"""`make bench`: every target measured side by side in one run, with one load generator (wrk) and one request.

Targets: the floor (a raw ASGI app answering a constant), onnxruntime called in-process (the model's own limit),
and the service with the student and the teacher, JSON and binary bodies, batching on and off, and the student
again with two uvicorn worker processes (`DISTILL_WORKERS=2`). Each HTTP target is loaded at 1, 8, 32 and 64
connections; 1 connection is the sequential latency.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput

from distill_bench.machine import machine
from distill_bench.pair import Pair, student_and_teacher
from distill_bench.samples import load_test_images
from distill_bench.scrape import Samples, delta, parse_samples, total
from distill_bench.server import (
    RunningService,
    cpu_seconds,
    ensure_open_files,
    fetch,
    free_port,
    rss_bytes,
    running,
    serve,
    wait_workers,
)
from distill_bench.wrk import Request, WrkResult, run_wrk
from modelrepo.card import ModelCard
from modelrepo.host import available_cores
from modelrepo.layout import model_path
from modelrepo.onnx import open_session
from service.settings import Settings

CONNECTIONS = (1, 8, 32, 64)
OVERLOAD = (256, 1024)  # connections far past what the student saturates at: shedding, and order of service
MAX_BATCH = Settings().max_batch_size  # the service's default full batch
BATCHING = {"on": {}, "off": {"DISTILL_MAX_BATCH_SIZE": "1"}}
WORKERS = 2


@dataclass(frozen=True)
class BenchSettings:
    models: Path
    out: Path
    duration_s: int = 5
    connections: tuple[int, ...] = CONNECTIONS
    data_dir: str = "/usr/share/datasets/fashion-mnist"


@dataclass
class TargetResult:
    """One HTTP target under every connection count, plus the service's own count of what it answered."""

    name: str
    runs: list[WrkResult] = field(default_factory=list)
    service_counted: float | None = None  # requests the service's metrics saw during the target's runs
    service_cpu_s: float | None = None  # CPU the service's processes used during the target's runs
    handler_us: dict[int, dict[str, float]] = field(default_factory=dict)  # connections -> handler_means_us

    def at(self, connections: int) -> WrkResult:
        return next(r for r in self.runs if r.connections == connections)


def model_input(card: ModelCard, pixels: np.ndarray) -> np.ndarray:
    pre = card.preprocessing
    x = (pixels.astype(np.float32) * pre.scale - pre.mean[0]) / pre.std[0]
    return x.reshape(1, 1, pre.height, pre.width).astype(np.float32)  # (1, 1, 28, 28)


def infer_requests(card: ModelCard, x: np.ndarray) -> dict[str, Request]:
    """The same tensor as a v2 JSON body and as a binary-extension body, the latter built by tritonclient itself."""
    path = f"/v2/models/{card.name}/infer"
    as_json = {
        "inputs": [{"name": card.input.name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]
    }
    tensor = InferInput(card.input.name, list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    body, header_length = InferenceServerClient.generate_request_body(
        [tensor], outputs=[InferRequestedOutput(card.output.name, binary_data=True)]
    )
    binary_headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(header_length)}
    return {
        "json": Request(path, json.dumps(as_json).encode(), {"Content-Type": "application/json"}),
        "binary": Request(path, bytes(body), binary_headers),
    }


def _session(onnx_path: Path, threads: int) -> ort.InferenceSession:
    return open_session(onnx_path, intra_op_threads=threads)  # as the service runs it


def _run_times_us(session: ort.InferenceSession, feed: dict[str, np.ndarray], seconds: float) -> np.ndarray:
    for _ in range(20):
        session.run(None, feed)
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return np.array(times) * 1e6


def in_process(card: ModelCard, onnx_path: Path, x: np.ndarray, seconds: float) -> dict[str, float]:
    """onnxruntime alone: batch 1 on one thread (the most the model itself allows on one core), and the time
    per row at batch 1 and at a full batch with as many threads as cores (how much batching itself can gain)."""
    us = _run_times_us(_session(onnx_path, 1), {card.input.name: x}, seconds)
    cores = available_cores()
    session = _session(onnx_path, cores)
    single = float(np.median(_run_times_us(session, {card.input.name: x}, seconds / 2)))
    full = np.repeat(x, MAX_BATCH, axis=0)  # (MAX_BATCH, C, H, W)
    batched = float(np.median(_run_times_us(session, {card.input.name: full}, seconds / 2))) / MAX_BATCH
    return {
        "runs_per_s_one_core": 1e6 / float(us.mean()),
        "p50_us": float(np.percentile(us, 50)),
        "p99_us": float(np.percentile(us, 99)),
        "threads": cores,
        "us_per_row_batch_1": single,
        "us_per_row_full_batch": batched,
    }


def _report(name: str, run: WrkResult) -> None:
    print(
        f"  {name:<28} c={run.connections:<3} {run.requests_per_s:9.0f} req/s  "
        f"p50 {run.latency_us[50.0]:7.0f} us  p99 {run.latency_us[99.0]:7.0f} us",
        flush=True,
    )


def _sweep(name: str, url: str, request: Request, settings: BenchSettings) -> TargetResult:
    result = TargetResult(name)
    for connections in settings.connections:
        run = run_wrk(url, request, connections, settings.duration_s)
        _report(name, run)
        result.runs.append(run)
    return result


def _floor(settings: BenchSettings, request: Request) -> TargetResult:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "distill_bench.floor:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    log = settings.out / "bench-raw" / "floor.log"
    with running(command, f"http://127.0.0.1:{port}", "/", log, None, 30.0) as floor:
        return _sweep("floor", floor.url, request, settings)


def handler_means_us(change: Samples, model: str) -> dict[str, float]:
    """Per request inside the service over one run, from its metrics: the whole handler (parse to response),
    the time queued in the batcher, and the model's compute per onnxruntime run (per request at 1 connection,
    where every run holds one request)."""

    def mean_us(histogram: str, **labels: str) -> float:
        count = total(change, f"{histogram}_count", **labels)
        return total(change, f"{histogram}_sum", **labels) / count * 1e6 if count else math.nan

    return {
        "handler": mean_us("distill_request_duration_seconds", endpoint="infer", model=model),
        "queue": mean_us("distill_queue_duration_seconds", model=model),
        "compute": mean_us("distill_inference_duration_seconds", model=model),
    }


def _settled(url: str, timeout_s: float = 10.0) -> Samples:
    """A scrape once the service has answered everything sent so far: when wrk stops, requests still in flight
    are answered after it, and must not count toward the next run."""
    samples = parse_samples(fetch(f"{url}/metrics"))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.2)
        again = parse_samples(fetch(f"{url}/metrics"))
        done = total(again, "distill_request_duration_seconds_count")
        if done == total(samples, "distill_request_duration_seconds_count"):
            return again
        samples = again
    return samples


def _counted(
    service: RunningService, pids: list[int], card: ModelCard, target: str, request: Request, settings: BenchSettings
) -> TargetResult:
    """One sweep, with what the service's own metrics saw during each run (all workers' totals with several):
    the requests it answered and where their time went, and the CPU time its processes `pids` used."""
    result, counted = TargetResult(target), 0.0
    cpu_before = sum(cpu_seconds(pid) for pid in pids)
    before = _settled(service.url)
    for connections in settings.connections:
        run = run_wrk(service.url, request, connections, settings.duration_s)
        after = _settled(service.url)  # also the start of the next run: nothing is sent in between
        change, before = delta(after, before), after
        _report(target, run)
        result.runs.append(run)
        counted += total(change, "distill_inference_requests_total", model=card.name)
        counted += total(change, "distill_requests_shed_total", endpoint="infer")  # 503 before reaching the model
        result.handler_us[connections] = handler_means_us(change, card.name)
    result.service_cpu_s = sum(cpu_seconds(pid) for pid in pids) - cpu_before
    result.service_counted = counted
    return result


def _service_targets(
    service: RunningService, pair: Pair, requests: dict[str, dict[str, Request]], batching: str, settings: BenchSettings
) -> Iterator[TargetResult]:
    for card in (pair.student, pair.teacher):
        for encoding, request in requests[card.name].items():
            target = f"{card.role} {encoding} batching {batching}"
            yield _counted(service, [service.pid], card, target, request, settings)


def _worker_targets(
    models: Path, student: ModelCard, requests: dict[str, Request], settings: BenchSettings
) -> tuple[list[TargetResult], dict[str, Any]]:
    """The student under several worker processes; RSS of the parent (no models) and of each worker."""
    log = settings.out / "bench-raw" / f"service-{WORKERS}-workers.log"
    with serve(models, log, env={"DISTILL_WORKERS": str(WORKERS)}) as service:
        pids = wait_workers(service.log, WORKERS)
        targets = [
            _counted(service, [service.pid, *pids], student, f"student {encoding} {WORKERS} workers", request, settings)
            for encoding, request in requests.items()
        ]
        rss = {"parent": rss_mb(service.pid), "workers": [rss_mb(pid) for pid in pids]}
    return targets, rss


def rss_mb(pid: int) -> float:
    try:
        return rss_bytes(pid) / 2**20
    except ValueError:
        return float("nan")


def run_bench(settings: BenchSettings) -> dict[str, Any]:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    pair = student_and_teacher(settings.models)
    pixels = load_test_images(settings.data_dir, 1)[0][0]  # (28, 28)
    inputs = {card.name: model_input(card, pixels) for card in (pair.student, pair.teacher)}
    requests = {card.name: infer_requests(card, inputs[card.name]) for card in (pair.student, pair.teacher)}
    raw = settings.out / "bench-raw"
    print("in-process onnxruntime ...", flush=True)
    limits = {
        card.role: in_process(card, model_path(settings.models, card.name, card.latest_version), inputs[card.name], 3.0)
        for card in (pair.student, pair.teacher)
    }
    targets = [_floor(settings, requests[pair.student.name]["json"])]
    overload = ensure_open_files(4 * max(OVERLOAD))  # before any server starts: they inherit the limit
    if not overload:
        print(f"no overload runs: they need {4 * max(OVERLOAD)} open files, above the hard limit (ulimit -Hn)")
    rss: dict[str, float] = {}
    for batching, env in BATCHING.items():
        with serve(settings.models, raw / f"service-batching-{batching}.log", env=env) as service:
            targets += list(_service_targets(service, pair, requests, batching, settings))
            if batching == "on" and overload:
                far = replace(settings, connections=OVERLOAD)
                student = pair.student
                json_body = requests[student.name]["json"]
                targets.append(_counted(service, [service.pid], student, "student json overload", json_body, far))
            rss[batching] = rss_mb(service.pid)
    worker_targets, worker_rss = _worker_targets(settings.models, pair.student, requests[pair.student.name], settings)
    targets += worker_targets
    return {
        "started": started,
        "machine": machine(),
        "duration_s": settings.duration_s,
        "targets": [
            {
                "name": t.name,
                "service_counted": t.service_counted,
                "service_cpu_s": t.service_cpu_s,
                "handler_us": t.handler_us,
                "runs": [asdict(r) for r in t.runs],
            }
            for t in targets
        ],
        "in_process": limits,
        "rss_mb_after_load": rss,
        "workers": WORKERS,
        "rss_mb_workers": worker_rss,
        "models": {"student": pair.student.name, "teacher": pair.teacher.name},
    }
