"""Servers for tests: the in-process app waited on, and real processes on free 127.0.0.1 ports, polled for
readiness with a deadline and stopped by PID."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from distill_bench.servers.service import serve


@dataclass(frozen=True)
class Server:
    url: str
    host_port: str
    pid: int
    log: Path


@contextlib.contextmanager
def run_service(
    models: Path, log: Path, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
) -> Iterator[Server]:
    """The real service (one onnxruntime thread, one warm-up run: tests need no more) until the block ends;
    `prefix` runs it under another command that execs it (`prlimit`, `setpriv`)."""
    quick = {"DISTILL_INTRA_OP_THREADS": "1", "DISTILL_WARMUP_RUNS": "1", **(env or {})}
    with serve(models, log, env=quick, prefix=prefix) as service:
        yield Server(service.url, service.url.removeprefix("http://"), service.pid, service.log)


def wait_ready(client: TestClient, deadline_s: float = 30.0) -> None:
    """In-process app: wait until `/v2/health/ready` answers 200."""
    deadline = time.monotonic() + deadline_s
    while client.get("/v2/health/ready").status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready after {deadline_s}s: {client.get('/v2/health/ready').text}")
        time.sleep(0.02)


def wait_loaded(client: TestClient, deadline_s: float = 30.0) -> None:
    """In-process app: wait until every model has been tried, whether it loaded or not."""
    deadline = time.monotonic() + deadline_s
    while "loading" in client.get("/v2/health/ready").text:
        if time.monotonic() > deadline:
            raise TimeoutError("models still loading")
        time.sleep(0.02)


def until(condition: Callable[[], bool], what: str, deadline_s: float) -> None:
    """Poll `condition` every 20 ms; a TimeoutError naming `what` past `deadline_s` seconds."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)
