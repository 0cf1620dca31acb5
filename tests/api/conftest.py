"""In-process app fixtures: a tiny model repository in tmp_path and a TestClient whose lifespan runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from servers import wait_ready
from tiers import require  # noqa: F401 - re-exported: tests elsewhere import `require` from `conftest`
from tiny_models import make_repo

from service.app import create_app
from service.settings import Settings


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
