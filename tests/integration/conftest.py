"""Fixtures of the integration tier: a tiny model repository and the real service serving it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import Server, run_service
from tiers import require  # noqa: F401 - re-exported: tests elsewhere import `require` from `conftest`
from tiny_models import make_repo


@pytest.fixture
def model_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "models")


@pytest.fixture
def server(model_repo: Path, tmp_path: Path) -> Iterator[Server]:
    with run_service(model_repo, tmp_path / "service.log") as running:
        yield running
