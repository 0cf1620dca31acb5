"""One target under wrk at each connection count; for the service, with what its own metrics and CPU clock saw
during each run."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from distill_bench.drivers.wrk import Request, WrkResult, run_wrk
from distill_bench.results.bench import HandlerMeans, Target, TargetResult
from distill_bench.scrape import Samples, delta, fetch_metrics, parse_samples, total
from distill_bench.servers.procfs import cpu_seconds


@dataclass(frozen=True)
class Sweep:
    """Where and how long: a server's URL, the connection counts and the seconds of each wrk run."""

    url: str
    connections: Sequence[int]
    duration_s: int


def _print(target: Target, run: WrkResult) -> None:
    print(
        f"  {target.label:<28} c={run.connections:<3} {run.requests_per_s:9.0f} req/s  "
        f"p50 {run.latency_us[50.0]:7.0f} us  p99 {run.latency_us[99.0]:7.0f} us",
        flush=True,
    )


def _wrk(sweep: Sweep, target: Target, request: Request, connections: int) -> WrkResult:
    run = run_wrk(sweep.url, request, connections, sweep.duration_s)
    _print(target, run)
    return run


def plain(sweep: Sweep, target: Target, request: Request) -> TargetResult:
    """wrk alone: for a server without metrics (the floor)."""
    return TargetResult(target, [_wrk(sweep, target, request, c) for c in sweep.connections])


def handler_means_us(change: Samples, model: str) -> HandlerMeans:
    """Per request inside the service over one run, from its metrics: the whole handler (parse to response),
    the time queued in the batcher, and the model's compute per onnxruntime run (per request at 1 connection,
    where every run holds one request)."""

    def mean_us(histogram: str, **labels: str) -> float:
        count = total(change, f"{histogram}_count", **labels)
        return total(change, f"{histogram}_sum", **labels) / count * 1e6 if count else math.nan

    return HandlerMeans(
        handler=mean_us("distill_request_duration_seconds", endpoint="infer", model=model),
        queue=mean_us("distill_queue_duration_seconds", model=model),
        compute=mean_us("distill_inference_duration_seconds", model=model),
    )


def _settled(url: str, timeout_s: float = 10.0) -> Samples:
    """A scrape once the service has answered everything sent so far: when wrk stops, requests still in flight
    are answered after it, and must not count toward the next run."""
    samples = parse_samples(fetch_metrics(url))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.2)
        again = parse_samples(fetch_metrics(url))
        done = total(again, "distill_request_duration_seconds_count")
        if done == total(samples, "distill_request_duration_seconds_count"):
            return again
        samples = again
    return samples


def counted(sweep: Sweep, pids: Sequence[int], model: str, target: Target, request: Request) -> TargetResult:
    """wrk with what the service's own metrics saw during each run (all workers' totals with several): the
    requests it answered and where their time went, and the CPU time its processes `pids` used."""
    runs, handler_us, answered = [], {}, 0.0
    cpu_before = sum(cpu_seconds(pid) for pid in pids)
    before = _settled(sweep.url)
    for connections in sweep.connections:
        runs.append(_wrk(sweep, target, request, connections))
        after = _settled(sweep.url)  # also the start of the next run: nothing is sent in between
        change, before = delta(after, before), after
        answered += total(change, "distill_inference_requests_total", model=model)
        answered += total(change, "distill_requests_shed_total", endpoint="infer")  # 503 before reaching the model
        handler_us[connections] = handler_means_us(change, model)
    cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
    return TargetResult(target, runs, service_counted=answered, service_cpu_s=cpu, handler_us=handler_us)
