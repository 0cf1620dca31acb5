"""Several uvicorn workers (`DISTILL_WORKERS=2`): `/metrics` and `/v1/stats`, whichever worker answers, report the
totals of all workers exactly, and the card gauges once per model (not once per worker)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from servers import Server, run_service

from distill_bench.servers.procfs import cpu_seconds
from distill_bench.servers.service import wait_workers
from modelrepo.layout import read_card
from service.metrics import CPU_PUBLISH_EVERY_S

STUDENT = "tiny-student"
WORKERS = 2
BATCH = 40  # requests per round, each on a fresh connection so the kernel hands them to either worker


@pytest.fixture
def multi_server(model_repo: Path, tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    folder = tmp_path / "prometheus-multiproc"  # given, so the test can read each worker's own files
    env = {"DISTILL_WORKERS": str(WORKERS), "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    with run_service(model_repo, tmp_path / "service.log", env=env) as running:
        wait_workers(running.log, WORKERS)
        yield running, folder


def infer_body() -> dict[str, object]:
    x = np.random.default_rng(0).random(784).astype(np.float32)
    return {"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": x.tolist()}]}


def send_round(url: str) -> None:
    body = infer_body()

    def one(_: int) -> int:
        return httpx.post(f"{url}/v2/models/{STUDENT}/infer", json=body, timeout=30).status_code  # new connection

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(one, range(BATCH))) == {200}


def per_worker_requests(folder: Path, scratch: Path) -> dict[str, float]:
    """Each worker's own count of the student's requests, from its counter file alone."""
    counts = {}
    for db in folder.glob("counter_*.db"):
        alone = scratch / db.stem
        alone.mkdir(parents=True, exist_ok=True)
        shutil.copy(db, alone / db.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
        counts[db.stem] = sum(
            sample.value
            for family in registry.collect()
            for sample in family.samples
            if sample.name == "distill_inference_requests_total" and sample.labels.get("model") == STUDENT
        )
    return counts


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = httpx.get(f"{url}/metrics", timeout=10).text  # a fresh connection: either worker may answer
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for have, v in samples.get(name, []) if all(have.get(k) == w for k, w in labels.items()))


def test_metrics_sum_every_worker(multi_server: tuple[Server, Path], model_repo: Path, tmp_path: Path) -> None:
    server, folder = multi_server
    sent = 0
    counts: dict[str, float] = {}
    for _ in range(10):  # until both workers have answered some (the kernel decides who accepts)
        send_round(server.url)
        sent += BATCH
        counts = per_worker_requests(folder, tmp_path / f"scratch-{sent}")
        if sum(1 for c in counts.values() if c > 0) >= WORKERS:
            break
    assert sum(1 for c in counts.values() if c > 0) >= WORKERS, f"one worker answered everything: {counts}"
    assert sum(counts.values()) == sent

    for _ in range(6):  # several scrapes, each answered by whichever worker accepts it: the same totals
        samples = scrape(server.url)
        assert total(samples, "distill_inference_requests_total", model=STUDENT, outcome="success") == sent
        assert total(samples, "distill_inference_requests_total", model=STUDENT) == sent
        assert total(samples, "distill_inference_duration_seconds_count", model=STUDENT) > 0
        assert total(samples, "distill_request_duration_seconds_count", model=STUDENT) == sent
        stats = httpx.get(f"{server.url}/v1/stats", timeout=10).json()  # the web page's view: the same totals
        assert stats["models"][STUDENT]["requests"]["success"] == sent and stats["endpoints"]["infer"] == sent

    samples = scrape(server.url)
    for name in ("tiny-student", "tiny-teacher"):
        record = read_card(model_repo / name / "config.json").versions[1]
        info = [v for labels, v in samples["distill_model_info"] if labels["model"] == name]
        assert info == [1.0]  # one series per model, not one per worker, and not summed to 2
        assert total(samples, "distill_model_eval_accuracy", model=name) == pytest.approx(record.test_accuracy)
        assert total(samples, "distill_model_parameters", model=name) == record.parameters
        assert total(samples, "distill_model_size_bytes", model=name) == record.size_bytes


def test_a_keep_alive_connection_is_not_held_up_by_nagle(multi_server: tuple[Server, Path]) -> None:
    """uvicorn writes headers and body separately; with Nagle on, the body waits for the client's delayed
    acknowledgement (40 ms on Linux), and the workers' connections had it on. A tiny model answers in about a
    millisecond here, so a median near 40 ms can only be that stall."""
    server, _ = multi_server
    body = infer_body()
    with httpx.Client(base_url=server.url, timeout=30) as client:  # one connection, kept alive
        times = [client.post(f"/v2/models/{STUDENT}/infer", json=body).elapsed.total_seconds() for _ in range(15)]
    assert sorted(times)[len(times) // 2] < 0.02, times


def per_worker_cpu(folder: Path, scratch: Path) -> dict[int, float]:
    """Each worker's own `distill_process_cpu_seconds_total`, by PID, from its counter file alone."""
    cpu = {}
    for db in folder.glob("counter_*.db"):
        alone = scratch / db.stem
        alone.mkdir(parents=True, exist_ok=True)
        shutil.copy(db, alone / db.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
        cpu[int(db.stem.removeprefix("counter_"))] = sum(
            s.value for f in registry.collect() for s in f.samples if s.name == "distill_process_cpu_seconds_total"
        )
    return cpu


def test_process_cpu_is_each_workers_own_summed(multi_server: tuple[Server, Path], tmp_path: Path) -> None:
    server, folder = multi_server
    pids = wait_workers(server.log, WORKERS)
    send_round(server.url)
    time.sleep(CPU_PUBLISH_EVERY_S + 0.1)  # so that each worker's next request publishes its CPU
    between = {pid: cpu_seconds(pid) for pid in pids}
    for attempt in range(10):  # until each worker has answered since `between` (the kernel decides who accepts)
        send_round(server.url)
        published = per_worker_cpu(folder, tmp_path / f"scratch-{attempt}")
        if all(published.get(pid, 0.0) >= between[pid] for pid in pids):
            break
    scraped = total(scrape(server.url), "distill_process_cpu_seconds_total")
    now = {pid: cpu_seconds(pid) for pid in pids}
    published = per_worker_cpu(folder, tmp_path / "scratch-end")
    for pid in pids:  # published after `between` was read, never more than the worker has used
        # /proc counts user and system time apart, each in 10 ms ticks: it may lag process_time() by two ticks.
        assert between[pid] <= published[pid] <= now[pid] + 0.02, (pid, between, published, now)
    assert scraped == pytest.approx(sum(published.values()))  # the scrape sums the workers
