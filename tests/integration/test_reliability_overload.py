"""Overload and graceful shutdown of a real uvicorn process, made fast and deterministic by a deliberately slow
tiny model: far past capacity, accepted requests stay bounded and the rest get 503 + Retry-After at once, every
request is answered and counted; on SIGTERM, readiness turns 503 first, in-flight requests complete, new
connections are refused and the process exits within its bound."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import statistics
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from servers import Server, run_service
from tiny_models import add_model, slow_model

from distill_bench.drivers.wrk import Request, run_wrk, wrk_available
from distill_bench.servers.process import ensure_open_files
from distill_bench.servers.service import wait_workers, worker_pids

QUEUE = 4


def infer_body(rows: int) -> dict[str, object]:
    data = np.zeros(rows * 784, dtype=np.float32).tolist()
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows, 1, 28, 28], "data": data}]}


def sample(url: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def alive(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


async def burst(url: str, n: int) -> list[tuple[int, float, httpx.Headers, str]]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one() -> tuple[int, float, httpx.Headers, str]:
            started = time.perf_counter()
            response = await client.post(url, json=infer_body(1))
            return response.status_code, time.perf_counter() - started, response.headers, response.text

        return await asyncio.gather(*(one() for _ in range(n)))


@pytest.fixture
def slow_repo(model_repo: Path) -> Path:
    add_model(model_repo, "slow", slow_model(), "teacher")
    return model_repo


def test_overload_rejects_quickly_and_answers_every_request(slow_repo: Path, tmp_path: Path) -> None:
    env = {"DISTILL_MODEL_OVERRIDES": f'{{"slow": {{"max_batch_size": 1, "max_queue_size": {QUEUE}}}}}'}
    with run_service(slow_repo, tmp_path / "overload.log", env) as server:
        url = f"{server.url}/v2/models/slow/infer"
        one_at_a_time = [httpx.post(url, json=infer_body(1), timeout=60).elapsed.total_seconds() for _ in range(5)]
        capacity = 1 / statistics.median(one_at_a_time)  # requests/s, one row each
        requests = "distill_request_duration_seconds_count"
        before = {
            o: sample(server.url, "distill_inference_requests_total", model="slow", outcome=o)
            for o in ("success", "rejected")
        }
        counted_before = sample(server.url, requests, endpoint="infer", model="slow")
        sent = 120  # far more at once than the queue holds
        results = asyncio.run(burst(url, sent))
        statuses = [r[0] for r in results]
        accepted = sorted(r[1] for r in results if r[0] == 200)
        rejected = [r for r in results if r[0] == 503]

        assert len(results) == sent and set(statuses) <= {200, 503}, set(statuses)
        assert accepted and rejected
        for _, latency, headers, text in rejected:
            assert headers["retry-after"] == "1" and "overloaded" in text
            assert latency < 10  # generous: a rejection does not wait for the model
        p99 = accepted[int(0.99 * (len(accepted) - 1))]
        assert p99 < 20  # generous: at most a full queue ahead of each, far below the 30 s deadline
        assert sample(server.url, requests, endpoint="infer", model="slow") - counted_before == sent
        success = sample(server.url, "distill_inference_requests_total", model="slow", outcome="success")
        rejections = sample(server.url, "distill_inference_requests_total", model="slow", outcome="rejected")
        assert success - before["success"] == len(accepted)
        assert rejections - before["rejected"] == len(rejected)
    print(f"capacity ~{capacity:.0f} req/s; {sent} at once: {len(rejected)} rejected, accepted p99 {p99 * 1e3:.0f} ms")


def test_past_the_inflight_bound_requests_are_shed_before_their_body_is_read(slow_repo: Path, tmp_path: Path) -> None:
    env = {
        "DISTILL_MAX_INFLIGHT_REQUESTS": "3",
        "DISTILL_MODEL_OVERRIDES": '{"slow": {"max_batch_size": 1, "max_queue_size": 1000}}',  # never full
    }
    with run_service(slow_repo, tmp_path / "shed.log", env) as server:
        counted_before = sample(server.url, "distill_request_duration_seconds_count", endpoint="infer", model="slow")
        sent = 60
        results = asyncio.run(burst(f"{server.url}/v2/models/slow/infer", sent))
        shed = [r for r in results if r[0] == 503]
        assert {r[0] for r in results} == {200, 503} and len(results) == sent
        for _, latency, headers, text in shed:
            assert headers["retry-after"] == "1" and "max_inflight_requests" in text and latency < 10
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200  # never shed
        counted = sample(server.url, "distill_request_duration_seconds_count", endpoint="infer", model="slow")
        assert counted - counted_before == sent - len(shed)
        assert sample(server.url, "distill_requests_shed_total", endpoint="infer") == len(shed)


@pytest.mark.skipif(not wrk_available(), reason="wrk is not installed (make system-deps installs it)")
def test_far_past_capacity_requests_are_answered_in_turn(model_repo: Path, tmp_path: Path) -> None:
    """1024 connections in a closed loop on a fast model: parsing on the event loop is the bottleneck, and each
    request waits about connections / throughput (the fair wait) when answered in turn. Under uvloop the p99 was
    13 times the fair wait here, as older requests waited behind newer ones; hence the asyncio loop."""
    connections = 1024
    if not ensure_open_files(4 * connections):
        pytest.skip(f"needs {4 * connections} open files; this machine's hard limit is lower (ulimit -Hn)")
    body = orjson.dumps(infer_body(1))
    request = Request("/v2/models/tiny-student/infer", body, {"Content-Type": "application/json"})
    with run_service(model_repo, tmp_path / "fair.log") as server:
        result = run_wrk(server.url, request, connections, 5)
        served = sample(server.url, "distill_inference_requests_total", model="tiny-student", outcome="success")
    fair_wait_s = connections / result.requests_per_s
    p99_s = result.latency_us[99.0] / 1e6
    print(f"{result.requests_per_s:.0f} req/s, fair wait {fair_wait_s * 1e3:.0f} ms, p99 {p99_s * 1e3:.0f} ms")
    assert result.socket_errors == 0 and served > connections
    assert p99_s < 4 * fair_wait_s  # asyncio: 1.5x here; uvloop: 13x


def _start_in_flight(
    server: Server, pool: concurrent.futures.Executor, n: int
) -> list[concurrent.futures.Future[httpx.Response]]:
    url = f"{server.url}/v2/models/slow/infer"
    body = infer_body(128)  # ~0.35 s each here; they run one after another
    futures = [pool.submit(httpx.post, url, json=body, timeout=60) for _ in range(n)]
    deadline = time.monotonic() + 30
    while sample(server.url, "distill_queue_duration_seconds_count", model="slow") < 1:  # the first has started
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return futures


def test_sigterm_drains_then_completes_in_flight_requests(slow_repo: Path, tmp_path: Path) -> None:
    drain_s, bound_s = 1.0, 20
    env = {"DISTILL_SHUTDOWN_DRAIN_S": str(drain_s), "DISTILL_SHUTDOWN_TIMEOUT_S": str(bound_s)}
    with (
        run_service(slow_repo, tmp_path / "shutdown.log", env) as server,
        concurrent.futures.ThreadPoolExecutor(8) as pool,
    ):
        in_flight = _start_in_flight(server, pool, 8)
        os.kill(server.pid, signal.SIGTERM)
        signalled = time.monotonic()
        ready = httpx.get(f"{server.url}/v2/health/ready", timeout=10)
        assert ready.status_code == 503 and "shutting down" in ready.json()["error"]
        assert httpx.get(f"{server.url}/v2/health/live", timeout=10).status_code == 200
        while True:  # after the drain, the listening socket closes: new connections are refused
            try:
                httpx.get(f"{server.url}/v2/health/live", timeout=10)
            except httpx.ConnectError:
                break
            assert time.monotonic() - signalled < drain_s + 10
            time.sleep(0.05)
        refused_after = time.monotonic() - signalled
        statuses = [f.result().status_code for f in in_flight]
        assert statuses == [200] * len(in_flight)
        while alive(server.pid):
            assert time.monotonic() - signalled < drain_s + bound_s + 10
            time.sleep(0.05)
        exited_after = time.monotonic() - signalled
    assert refused_after >= drain_s * 0.9  # the drain: the socket stayed open while readiness said 503
    print(f"refused new connections after {refused_after:.2f}s, exited after {exited_after:.2f}s")


def test_sigterm_to_the_parent_drains_every_worker(slow_repo: Path, tmp_path: Path) -> None:
    workers, drain_s, bound_s = 2, 2.0, 20
    env = {
        "DISTILL_WORKERS": str(workers),
        "DISTILL_SHUTDOWN_DRAIN_S": str(drain_s),
        "DISTILL_SHUTDOWN_TIMEOUT_S": str(bound_s),
    }
    with (
        run_service(slow_repo, tmp_path / "workers.log", env) as server,
        concurrent.futures.ThreadPoolExecutor(8) as pool,
    ):
        wait_workers(server.log, workers)
        in_flight = _start_in_flight(server, pool, 8)
        os.kill(server.pid, signal.SIGTERM)  # uvicorn's supervisor passes it on to each worker
        signalled = time.monotonic()
        draining: list[int] = []
        while len(draining) < workers:  # each worker logs the start of its drain, with its PID
            assert time.monotonic() - signalled < 10, f"workers {draining} drained:\n{server.log.read_text()[-3000:]}"
            time.sleep(0.05)
            draining = worker_pids(server.log, r"service\.shutdown: signal \d+: not ready")
        ready = httpx.get(f"{server.url}/v2/health/ready", timeout=10)  # a fresh connection: either worker
        assert ready.status_code == 503 and "shutting down" in ready.json()["error"]
        statuses = [f.result().status_code for f in in_flight]
        assert statuses == [200] * len(in_flight)
        while alive(server.pid):
            assert time.monotonic() - signalled < drain_s + bound_s + 10
            time.sleep(0.05)
    assert not any(alive(pid) for pid in draining)


def test_shutdown_is_bounded_when_in_flight_requests_take_too_long(slow_repo: Path, tmp_path: Path) -> None:
    bound_s = 1
    env = {"DISTILL_SHUTDOWN_TIMEOUT_S": str(bound_s)}
    with (
        run_service(slow_repo, tmp_path / "bounded.log", env) as server,
        concurrent.futures.ThreadPoolExecutor(40) as pool,
    ):
        in_flight = _start_in_flight(server, pool, 40)  # ~14 s of work queued
        os.kill(server.pid, signal.SIGTERM)
        signalled = time.monotonic()
        while alive(server.pid):
            assert time.monotonic() - signalled < bound_s + 8, "the process outlived its shutdown bound"
            time.sleep(0.05)
        for future in in_flight:  # each is answered or its connection closed; none hangs
            try:
                status = future.result(timeout=10).status_code
                assert status in (200, 503)
            except httpx.TransportError:
                pass
