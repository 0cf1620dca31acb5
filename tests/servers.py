"""Servers for tests: the in-process app waited on, and real processes on free 127.0.0.1 ports, polled for
readiness with a deadline and stopped by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, deadline_s: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {deadline_s}s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


@dataclass(frozen=True)
class Server:
    url: str
    host_port: str
    pid: int
    log: Path


@contextlib.contextmanager
def run_service(models: Path, log: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    port = free_port()
    full_env = {**os.environ, "DISTILL_INTRA_OP_THREADS": "1", "DISTILL_WARMUP_RUNS": "1", **(env or {})}
    cmd = [sys.executable, "-m", "service", "--models", str(models), "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/health/ready", 60, proc, log)
        yield Server(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", proc.pid, log)
    finally:
        stop(proc)


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
