"""In-process app fixtures: a tiny model repository in tmp_path and a TestClient whose lifespan runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tiny_models import make_repo

from service.app import create_app
from service.settings import Settings


def wait_ready(client: TestClient, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while client.get("/v2/health/ready").status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready after {deadline_s}s: {client.get('/v2/health/ready').text}")
        time.sleep(0.02)


def loaded(client: TestClient, deadline_s: float = 30.0) -> None:
    """Wait until loading finished (ready or not): every model tried."""
    deadline = time.monotonic() + deadline_s
    while "loading" in client.get("/v2/health/ready").text:
        if time.monotonic() > deadline:
            raise TimeoutError("models still loading")
        time.sleep(0.02)


@pytest.fixture
def model_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "models")


@pytest.fixture
def settings(model_repo: Path) -> Settings:
    return Settings(models_dir=model_repo, intra_op_threads=1, warmup_runs=1)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        yield c
