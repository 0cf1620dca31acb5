"""A model folder the service cannot read (`chmod 000`) is a failed model, reported in the log and on its own
`ready` endpoint, not a folder that silently vanishes. Root reads anything, so as root the service runs without
the capabilities that let it (`setpriv`), as it would as the container's uid 10001."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import run_service
from tiers import require
from tiny_models import add_model, mlp_student

from modelrepo.layout import model_path

LOCKED = "locked-student"


def unprivileged() -> tuple[str, ...]:
    """The command prefix that makes permission bits apply to this user."""
    if os.geteuid() != 0:
        return ()
    require(shutil.which("setpriv") is not None, "setpriv (util-linux) is needed to drop root's capabilities")
    drop = "-dac_override,-dac_read_search"
    return ("setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", "--")


@pytest.fixture
def locked_repo(model_repo: Path) -> Iterator[Path]:
    add_model(model_repo, LOCKED, mlp_student(seed=3), "student", teacher="tiny-teacher")
    folder = model_path(model_repo, LOCKED, 1).parents[1]
    folder.chmod(0)
    try:
        yield model_repo
    finally:
        folder.chmod(0o755)


def test_an_unreadable_model_folder_is_reported_as_failed(locked_repo: Path, tmp_path: Path) -> None:
    env = {"DISTILL_STUDENT": "tiny-student"}
    with run_service(locked_repo, tmp_path / "service.log", env=env, prefix=unprivileged()) as server:
        response = httpx.get(f"{server.url}/v2/models/{LOCKED}/ready", timeout=10)
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert LOCKED in error and "Permission denied" in error and str(locked_repo) not in error
        assert httpx.get(f"{server.url}/v2/health/ready", timeout=10).status_code == 200  # the others are served
        log = server.log.read_text()
    assert f"model '{LOCKED}' failed to load" in log and f"failed: ['{LOCKED}']" in log
