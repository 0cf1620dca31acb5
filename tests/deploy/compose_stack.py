"""Helpers for the compose stack tests: commands, ports, polling, the test-only base image, the Stack handle.

What it needs (`.ci/run` provides all of it; a developer machine without it skips, CI fails):
- a running dockerd, `docker-compose` (v1.29), and the base image `local/debian:bookworm`
  (`../shared/tools/docker-engine.sh start` does all three);
- the machine's CA certificates (see `ca_bundle`), copied into a test-only base image so that pip inside the
  builds reaches PyPI;
- the Debian Fashion-MNIST, to train the quick models on the host: torch inside a container would download a
  CUDA build, so the trainer image is not built here (the README says how users build it). DISTILL_TEST_MODELS
  names an already trained repository to skip the training.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from tiers import require

ROOT = Path(__file__).resolve().parents[2]
IMAGES = Path(__file__).resolve().parent / "images"
DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
BASE_IMAGE = "distill-serve/python-debian:test"
API_IMAGE = "distill-serve/api:test"
PROMETHEUS_IMAGE = "distill-serve/prometheus-debian:test"
LOADTEST_IMAGE = "distill-serve/loadtest:test"
COMPOSE_FILES = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(ROOT / "docker-compose.test.yml")]


def run(cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    """Run a command from the repository root; on failure, fail with its output."""
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
        )
    return result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: object, deadline_s: float, interval_s: float = 1.0) -> object:
    """Poll `check()` until it returns something truthy (exceptions count as not yet) or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()  # type: ignore[operator]
            if last:
                return last
        except (httpx.HTTPError, OSError, ValueError, KeyError) as err:
            last = err
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not reached after {deadline_s:.0f}s (last: {last!r})")


def ca_bundle() -> bytes:
    """The CA certificates this machine trusts: the system bundle plus local CAs not yet merged into it.

    HTTPS from here goes through an intercepting proxy whose CA is installed under
    /usr/local/share/ca-certificates (trusted on the host through /etc/ssl/certs) but may be missing from the
    bundle file until `update-ca-certificates` runs. DISTILL_TEST_CA_BUNDLE names a bundle to use instead.
    """
    if os.environ.get("DISTILL_TEST_CA_BUNDLE"):
        return Path(os.environ["DISTILL_TEST_CA_BUNDLE"]).read_bytes()
    system = Path("/etc/ssl/certs/ca-certificates.crt")
    require(system.is_file(), f"no CA bundle at {system} for pip inside the image builds")
    local = sorted(Path("/usr/local/share/ca-certificates").rglob("*.crt"))
    return b"\n".join(p.read_bytes() for p in (system, *local))


def build_base_image(tmp_path: Path) -> None:
    context = tmp_path / "python-base"
    context.mkdir()
    shutil.copy(IMAGES / "python.Dockerfile", context / "Dockerfile")
    (context / "ca-certificates.crt").write_bytes(ca_bundle())
    run(["docker", "build", "-q", "-t", BASE_IMAGE, str(context)], env=os.environ | {"DOCKER_BUILDKIT": "0"})


@dataclass(frozen=True)
class Stack:
    """The running stack: `stack("ps")` runs docker-compose on it; URLs of the published ports."""

    project: str
    env: dict[str, str]
    api: str
    prometheus: str
    models: Path

    @property
    def compose(self) -> list[str]:
        return ["docker-compose", "-p", self.project, *COMPOSE_FILES]

    def __call__(self, *args: str, timeout: float = 900) -> str:
        return run([*self.compose, *args], env=self.env, timeout=timeout)
