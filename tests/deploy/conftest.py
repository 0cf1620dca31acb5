"""Fixtures of the deploy tier: the compose stack under a real Docker engine, up once per module, always taken down.

What it needs (`.ci/run` provides all of it; a developer machine without it skips, CI fails):
- a running dockerd, `docker-compose` (v1.29), and the base image `local/debian:bookworm`
  (`../shared/tools/docker-engine.sh start` does all three);
- the machine's CA certificates (compose_stack.ca_bundle), copied into a test-only base image so that pip inside
  the builds reaches PyPI;
- the Debian Fashion-MNIST, to train the quick models on the host (`quick_build`, shared with the other tiers):
  torch inside a container would download a CUDA build, so the trainer image is not built here (the README says
  how users build it). DISTILL_TEST_MODELS names an already trained repository to skip the training.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from compose_stack import (
    API_IMAGE,
    BASE_IMAGE,
    LOADTEST_IMAGE,
    PROMETHEUS_IMAGE,
    ROOT,
    Stack,
    build_base_image,
    free_port,
    wait_for,
)
from tiers import require


@pytest.fixture(scope="session")
def docker_engine() -> None:
    require(shutil.which("docker") is not None, "the docker CLI is not installed (../shared/tools/docker-engine.sh)")
    require(shutil.which("docker-compose") is not None, "docker-compose is not installed")
    info = subprocess.run(["docker", "info"], capture_output=True, check=False)
    require(info.returncode == 0, "dockerd is not running (../shared/tools/docker-engine.sh start)")
    base = subprocess.run(["docker", "image", "inspect", "local/debian:bookworm"], capture_output=True, check=False)
    require(base.returncode == 0, "the base image local/debian:bookworm is missing (docker-engine.sh start)")


@pytest.fixture(scope="session")
def model_repository(request: pytest.FixtureRequest) -> Path:
    """The quick models (the session's `quick_build`, trained once on the host for every tier), readable by the
    container's non-root user."""
    if os.environ.get("DISTILL_TEST_MODELS"):
        return Path(os.environ["DISTILL_TEST_MODELS"]).resolve()
    repo: Path = request.getfixturevalue("quick_build") / "models"
    # pytest makes its temporary folders 0700; the api runs as uid 10001 and reads the bind mount.
    for path in (repo, *repo.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return repo


@pytest.fixture(scope="module")
def stack(docker_engine: None, model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`up -d api prometheus` (the trainer runs first: api waits for it), ready; `down -v` whatever happens."""
    build_base_image(tmp_path_factory.mktemp("images"))
    api_port, prometheus_port = free_port(), free_port()
    env = os.environ | {
        "DISTILL_BASE_IMAGE": BASE_IMAGE,
        "DISTILL_API_IMAGE": API_IMAGE,
        "PROMETHEUS_IMAGE": PROMETHEUS_IMAGE,
        "DISTILL_LOADTEST_IMAGE": LOADTEST_IMAGE,
        "LOCUST_USERS": "2",
        "LOCUST_RUN_TIME": "10s",
        "DISTILL_TEST_MODELS": str(model_repository),
        "DISTILL_API_BIND": "127.0.0.1",
        "DISTILL_API_PORT": str(api_port),
        "PROMETHEUS_BIND": "127.0.0.1",
        "PROMETHEUS_PORT": str(prometheus_port),
    }
    project = f"distilltest{os.getpid()}"
    stack = Stack(project, env, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{prometheus_port}", model_repository)
    try:
        stack("build", "api", "prometheus", "locust")
        stack("up", "-d", "api", "prometheus")
        wait_for("api readiness", lambda: httpx.get(f"{stack.api}/v2/health/ready").status_code == 200, 180)
        yield stack
    except BaseException:
        logs = subprocess.run([*stack.compose, "logs", "--no-color", "--tail", "200"], env=env, cwd=ROOT,
                              capture_output=True, text=True, check=False)  # fmt: skip
        print(logs.stdout)
        raise
    finally:
        down = [*stack.compose, "--profile", "loadtest", "down", "-v", "--remove-orphans", "-t", "20"]
        subprocess.run(down, env=env, cwd=ROOT, capture_output=True, check=False, timeout=300)
