"""The CPU counters of /metrics: the process's CPU time, and each model's onnxruntime runs, on the event loop and
in a worker thread."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from servers import wait_ready
from tiny_models import normalise

from distill_bench.scrape import parse_samples, total
from service.app import create_app
from service.settings import Settings

ROWS = normalise(np.random.default_rng(0).integers(0, 256, size=(4, 784)))  # (4, 1, 28, 28)


def infer(client: TestClient, model: str, times: int) -> None:
    body = {"inputs": [{"name": "input", "shape": list(ROWS.shape), "datatype": "FP32", "data": ROWS.ravel().tolist()}]}
    for _ in range(times):
        assert client.post(f"/v2/models/{model}/infer", json=body).status_code == 200


def scrape(client: TestClient) -> dict[str, float]:
    samples = parse_samples(client.get("/metrics").text)
    return {
        "process": total(samples, "distill_process_cpu_seconds_total"),
        "student": total(samples, "distill_inference_cpu_seconds_total", model="tiny-student", role="student"),
        "teacher": total(samples, "distill_inference_cpu_seconds_total", model="tiny-teacher", role="teacher"),
        "student_wall": total(samples, "distill_inference_duration_seconds_sum", model="tiny-student"),
    }


@pytest.fixture
def threaded(model_repo: Path) -> Iterator[TestClient]:
    """Every model in a worker thread (no run is quick enough to stay on the event loop)."""
    settings = Settings(models_dir=model_repo, intra_op_threads=2, warmup_runs=1, inline_run_max_us=0)
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        yield c


def test_process_cpu_is_this_process_cpu_time_at_the_scrape(client: TestClient) -> None:
    infer(client, "tiny-student", 20)
    before = time.process_time()
    scraped = scrape(client)["process"]
    assert before <= scraped <= time.process_time()  # in-process: the app's process is this one


def test_a_models_runs_count_on_its_own_counter(client: TestClient) -> None:
    start = scrape(client)
    infer(client, "tiny-student", 50)
    end = scrape(client)
    student = end["student"] - start["student"]
    assert student > 0
    assert end["teacher"] == start["teacher"]  # no teacher request, no teacher CPU
    # On the event loop with one thread, a run's CPU is at most its wall time (a little for clock reads).
    assert student <= end["student_wall"] - start["student_wall"] + 1e-3
    assert student < end["process"] - start["process"]


def test_runs_in_a_worker_thread_count_their_cpu(threaded: TestClient) -> None:
    start = scrape(threaded)
    infer(threaded, "tiny-teacher", 50)
    end = scrape(threaded)
    teacher = end["teacher"] - start["teacher"]
    assert 0 < teacher < end["process"] - start["process"]
    assert end["student"] == start["student"]
