"""Shadow traffic in-process: sampled student-routed requests also go to the teacher once answered; their
agreement is the one `/v1/compare` gives on the same images; the sampled share is the setting; a busy teacher or
a full queue drops them, counted; the student's answer never waits for the teacher. Its latency cost is measured
by `python -m distill_bench shadow` (reports/shadow.md), not here."""

from __future__ import annotations

import functools
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from scrape import metric_total
from servers import until as wait_until
from servers import wait_ready
from tiny_models import add_model, heavy_model, mlp_student

from service.app import create_app
from service.settings import ModelOverrides, Settings

STUDENT, TEACHER = "tiny-student", "tiny-teacher"
SHADOW = {"student": STUDENT, "teacher": TEACHER, "source": "shadow"}


def settings_for(repo: Path, **changes: object) -> Settings:
    return Settings.model_validate({"models_dir": repo, "intra_op_threads": 1, "warmup_runs": 1, **changes})


@pytest.fixture
def shadowed(model_repo: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(model_repo, shadow_rate=1.0))) as client:
        wait_ready(client)
        yield client


def metric(client: TestClient, name: str, **labels: str) -> float:
    return metric_total(client.get("/metrics").text, name, **labels)


def shadowed_count(client: TestClient, outcome: str = "compared") -> float:
    return metric(client, "distill_shadow_requests_total", outcome=outcome)


until = functools.partial(wait_until, deadline_s=15.0)  # how long this module's conditions may take


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def images(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [png(rng.integers(0, 256, (28, 28))) for _ in range(n)]


def test_shadow_agreement_is_what_compare_says_on_the_same_images(shadowed: TestClient) -> None:
    uploads = images(40)
    for i, image in enumerate(uploads):
        response = shadowed.post("/v1/classify?route=student", files={"files": (f"{i}.png", image, "image/png")})
        assert response.status_code == 200 and response.json()["model"] == STUDENT
    until(lambda: shadowed_count(shadowed) == len(uploads), "every request shadowed")
    agree = metric(shadowed, "distill_agreement_total", **SHADOW, outcome="agree")
    disagree = metric(shadowed, "distill_agreement_total", **SHADOW, outcome="disagree")
    files = [("files", (f"{i}.png", image, "image/png")) for i, image in enumerate(uploads)]
    compared = shadowed.post("/v1/compare", files=files).json()["agree"]
    assert (agree, disagree) == (sum(compared), len(compared) - sum(compared))
    assert 0 < agree < len(uploads)  # both outcomes occur: the counts are compared, not two zeros
    # The teacher's shadow runs count as its requests; the student's as its own, once each.
    assert metric(shadowed, "distill_inference_requests_total", model=TEACHER, outcome="success") == 40 + 1
    assert metric(shadowed, "distill_inference_requests_total", model=STUDENT, outcome="success") == 40 + 1
    for role in ("student", "teacher"):
        compute = metric(shadowed, "distill_shadow_compute_seconds_count", student=STUDENT, teacher=TEACHER, role=role)
        assert compute == len(uploads)


def test_v2_requests_to_the_student_are_shadowed_too(shadowed: TestClient) -> None:
    x = np.random.default_rng(1).normal(0, 1, (3, 1, 28, 28)).astype(np.float32)
    tensor = {"name": "input", "datatype": "FP32", "shape": [3, 1, 28, 28], "data": x.ravel().tolist()}
    assert shadowed.post(f"/v2/models/{STUDENT}/infer", json={"inputs": [tensor]}).status_code == 200
    assert shadowed.post(f"/v2/models/{TEACHER}/infer", json={"inputs": [tensor]}).status_code == 200  # not shadowed
    until(lambda: shadowed_count(shadowed) == 1, "the student's request shadowed")
    rows = sum(metric(shadowed, "distill_agreement_total", **SHADOW, outcome=o) for o in ("agree", "disagree"))
    assert rows == 3
    assert shadowed_count(shadowed) == 1  # the teacher's own request was not sent to itself


@pytest.mark.parametrize(("rate", "expected"), [(0.25, 10), (0.5, 20), (0.0, 0)])
def test_the_sampled_share_is_the_rate(model_repo: Path, rate: float, expected: int) -> None:
    with TestClient(create_app(settings_for(model_repo, shadow_rate=rate))) as client:
        wait_ready(client)
        for _ in range(40):
            assert client.post("/v1/classify", json={"inputs": [[0] * 784]}).status_code == 200
        for _ in range(4):  # cascade and compare are never shadowed: they ask the teacher themselves
            assert client.post("/v1/classify?route=cascade", json={"inputs": [[0] * 784]}).status_code == 200
            assert client.post("/v1/compare", json={"inputs": [[0] * 784]}).status_code == 200
        until(lambda: shadowed_count(client) == expected, f"{expected} requests shadowed")
        time.sleep(0.2)
        assert shadowed_count(client) == expected
        if rate == 0:
            assert "distill_shadow_requests_total{" not in client.get("/metrics").text


@pytest.fixture
def slow_teacher(tmp_path: Path) -> Path:
    """A teacher that takes ~0.25 s a row here: still running long after the student has answered."""
    repo = tmp_path / "slow"
    add_model(repo, TEACHER, heavy_model(), "teacher")
    add_model(repo, STUDENT, mlp_student(), "student", teacher=TEACHER)
    return repo


def slow_settings(repo: Path, **changes: object) -> Settings:
    one_row = {TEACHER: ModelOverrides(max_batch_size=1)}  # warm-up and shadow runs of one row each
    return settings_for(repo, shadow_rate=1.0, model_overrides=one_row, **changes)


def test_the_students_answer_never_waits_for_the_teacher(slow_teacher: Path) -> None:
    with TestClient(create_app(slow_settings(slow_teacher))) as client:
        wait_ready(client)
        response = client.post("/v1/classify", json={"inputs": [[0] * 784]})
        assert response.status_code == 200 and response.json()["model"] == STUDENT
        assert shadowed_count(client) == 0  # answered while the teacher's shadow run has not finished
        until(lambda: shadowed_count(client) == 1, "the shadow run done")


def test_a_full_shadow_queue_drops_and_counts(slow_teacher: Path) -> None:
    with TestClient(create_app(slow_settings(slow_teacher, shadow_queue_size=1))) as client:
        wait_ready(client)
        for _ in range(6):
            assert client.post("/v1/classify", json={"inputs": [[0] * 784]}).status_code == 200
        assert shadowed_count(client, "queue_full") >= 1
        until(lambda: shadowed_count(client) + shadowed_count(client, "queue_full") == 6, "every job accounted for")


def test_a_busy_teacher_drops_shadow_requests_and_serves_its_own(slow_teacher: Path) -> None:
    with TestClient(create_app(slow_settings(slow_teacher))) as client:
        wait_ready(client)
        stop = threading.Event()
        answered: list[int] = []

        def teacher_traffic() -> None:
            while not stop.is_set():
                answered.append(client.post("/v1/classify?route=teacher", json={"inputs": [[0] * 784]}).status_code)

        threads = [threading.Thread(target=teacher_traffic) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            until(lambda: len(answered) >= 1, "the teacher busy with its own requests")
            for _ in range(5):
                assert client.post("/v1/classify", json={"inputs": [[0] * 784]}).status_code == 200
                time.sleep(0.1)
            until(lambda: shadowed_count(client, "teacher_busy") >= 1, "a shadow request dropped")
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
        assert set(answered) == {200}

        def accounted() -> float:
            return sum(shadowed_count(client, o) for o in ("compared", "teacher_busy", "queue_full"))

        until(lambda: accounted() == 5, "every job accounted for")
