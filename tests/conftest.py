"""Test tiers are folders; each test is marked by the folder it lives in (unit, api, integration, deploy).

Also the fixtures every tier may share: `quick_build`, the quick profile's trained models, built once a session.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import pytest
from quick_models import run_pipeline

# `require` and `IN_CI` live in tests/tiers.py (a unique module name); importing them from `conftest` still works.
from tiers import IN_CI, require  # noqa: F401 - IN_CI is re-exported

from modelrepo.dataset import DEBIAN_PACKAGE, DEFAULT_DATA_DIR

TIERS = ("unit", "api", "integration", "deploy")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


def _import_starlette_testclient() -> None:
    """Starlette 1.x warns (as a UserWarning) that its TestClient wants httpx2; httpx still works. Import it
    once here, before the conftests that use it, so warnings-as-errors does not turn that notice into a failure."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning)
        with contextlib.suppress(ImportError):  # the training-only install has no starlette
            import starlette.testclient  # noqa: F401


_import_starlette_testclient()


@pytest.fixture(scope="session")
def quick_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding `models/`, `run/` and `reports/` of one quick-profile pipeline run (tests/quick_models.py),
    trained once per session. Tests read it; one re-runs the pipeline on it and checks that nothing changes."""
    require(
        Path(DEFAULT_DATA_DIR).is_dir(),
        f"Fashion-MNIST not installed at {DEFAULT_DATA_DIR} (apt-get install {DEBIAN_PACKAGE})",
    )
    folder = tmp_path_factory.mktemp("quick")
    proc = run_pipeline(folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder
