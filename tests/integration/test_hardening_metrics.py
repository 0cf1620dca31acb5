"""Metrics agree with what clients received: with the teacher overloaded, `/v1/compare` answers some requests 503,
and neither the student's successes nor its online-accuracy counters move for those."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from servers import run_service
from tiny_models import add_model, mlp_student, slow_model

STUDENT, TEACHER = "tiny-student", "slow-teacher"
SENT = 40


def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(v for (n, have), v in found.items() if n == name and set(labels.items()) <= have)


async def compare_burst(url: str) -> list[int]:
    body = {"inputs": [[0] * 784], "labels": [3]}
    limits = httpx.Limits(max_connections=SENT, max_keepalive_connections=SENT)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        responses = await asyncio.gather(*(client.post(f"{url}/v1/compare", json=body) for _ in range(SENT)))
    return [r.status_code for r in responses]


def test_compare_counts_nothing_for_answers_that_were_503(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    add_model(repo, TEACHER, slow_model(), "teacher")
    add_model(repo, STUDENT, mlp_student(), "student", teacher=TEACHER)
    env = {"DISTILL_MODEL_OVERRIDES": f'{{"{TEACHER}": {{"max_batch_size": 1, "max_queue_size": 1}}}}'}
    with run_service(repo, tmp_path / "service.log", env) as server:
        statuses = asyncio.run(compare_burst(server.url))
        found = samples(server.url)
    ok = statuses.count(200)
    assert set(statuses) == {200, 503}, statuses  # the teacher's queue was full for some
    requests = "distill_inference_requests_total"
    assert value(found, requests, model=STUDENT, outcome="success") == ok
    assert value(found, requests, model=TEACHER, outcome="success") == ok
    assert value(found, requests, model=TEACHER, outcome="rejected") == SENT - ok
    for model in (STUDENT, TEACHER):
        assert value(found, "distill_predictions_labeled_total", model=model) == ok
    assert value(found, "distill_agreement_total", student=STUDENT, teacher=TEACHER) == ok
