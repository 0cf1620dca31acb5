"""`shadow`: what shadow traffic costs the student's answers. The same wrk load against the student (a v2 JSON
tensor, and `/v1/classify` with JSON pixel rows), with `DISTILL_SHADOW_RATE` 0 and 1.0, in alternating rounds
(these machines drift), each on a fresh service with the same settings otherwise; and what the service's own
metrics counted of the shadow runs (compared, dropped, agreement, both compute times).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from distill_bench.drivers.wrk import Request, run_wrk
from distill_bench.pair import student_and_teacher
from distill_bench.results.machine import this_machine
from distill_bench.results.shadow import Point, ShadowCounts, ShadowRun, ShadowSettings
from distill_bench.runs.bodies import infer_requests, model_input
from distill_bench.samples import load_test_images
from distill_bench.scrape import Samples, buckets, delta, fetch_metrics, parse_samples, quantile, total
from distill_bench.servers.procfs import cpu_seconds
from distill_bench.servers.service import serve
from modelrepo.card import ModelCard

SHADOW_COMPUTE = "distill_shadow_compute_seconds"


def _requests(student: ModelCard) -> dict[str, Request]:
    images, _ = load_test_images(count=1)
    rows = {"inputs": [images[0].reshape(-1).tolist()]}  # raw pixels, 0..255
    classify = Request("/v1/classify?route=student", json.dumps(rows).encode(), {"Content-Type": "application/json"})
    return {"v2": infer_requests(student, model_input(student, images[0]))["json"], "classify": classify}


def _counts(rate: float, round_: int, change: Samples, student: str, teacher: str) -> ShadowCounts:
    outcomes = {
        dict(labels)["outcome"]: value
        for (name, labels), value in change.items()
        if name == "distill_shadow_requests_total" and value
    }
    agreement = {o: total(change, "distill_agreement_total", source="shadow", outcome=o) for o in ("agree", "disagree")}
    pair = {"student": student, "teacher": teacher}
    return ShadowCounts(
        rate, round_, outcomes, agreement,
        quantile(0.5, buckets(change, SHADOW_COMPUTE, **pair, role="student")),
        quantile(0.5, buckets(change, SHADOW_COMPUTE, **pair, role="teacher")),
    )  # fmt: skip


def _point(url: str, pid: int, request: Request, load: tuple[float, int, str, int], duration_s: int) -> Point:
    rate, round_, body, connections = load
    cpu = cpu_seconds(pid)
    result = run_wrk(url, request, connections, duration_s)
    point = Point(
        rate, round_, body, connections, result.requests, result.requests_per_s, result.latency_us[50.0],
        result.latency_us[99.0], result.latency_mean_us, result.socket_errors + result.non_2xx, cpu_seconds(pid) - cpu,
    )  # fmt: skip
    print(f"  shadow {rate:g} {body:<8} c={connections:<2} p50 {point.p50_us:7.0f} us  p99 {point.p99_us:7.0f} us  "
          f"{point.requests_per_s:7.0f} req/s", flush=True)  # fmt: skip
    return point


def _one_service(run: ShadowRun, requests: dict[str, Request], rate: float, round_: int) -> None:
    """A fresh service at `rate`: every body at every connection count, then its shadow counts."""
    settings = run.settings
    log = settings.out / "shadow-raw" / f"service-rate-{rate:g}-round-{round_}.log"
    with serve(settings.models, log, env={"DISTILL_SHADOW_RATE": str(rate)}) as service:
        start = parse_samples(fetch_metrics(service.url))
        for body, request in requests.items():
            for connections in settings.connections:
                load = (rate, round_, body, connections)
                run.points.append(_point(service.url, service.pid, request, load, settings.duration_s))
        change = delta(parse_samples(fetch_metrics(service.url)), start)
        run.counts.append(_counts(rate, round_, change, run.student, run.teacher))


def run_shadow(settings: ShadowSettings) -> ShadowRun:
    pair = student_and_teacher(settings.models)
    run = ShadowRun(settings, this_machine(), datetime.now(UTC).isoformat(timespec="seconds"),
                    pair.student.name, pair.teacher.name)  # fmt: skip
    requests = _requests(pair.student)
    for round_ in range(settings.rounds):
        for rate in settings.rates:
            _one_service(run, requests, rate, round_)
    return run
