"""Start the service as a real uvicorn subprocess on a free 127.0.0.1 port, and stop it by its PID."""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RunningService:
    pid: int
    url: str
    log: Path


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _stop(process: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running(
    command: list[str], url: str, ready_path: str, log: Path, env: Mapping[str, str] | None, ready_timeout_s: float
) -> Iterator[RunningService]:
    """Run `command` until the block ends; raise with the log's tail if `url + ready_path` never answers 200."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + ready_timeout_s
        while not _ready(url + ready_path):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{command[:3]} at {url} did not become ready; its log ends with:\n{tail}")
            time.sleep(0.1)
        yield RunningService(pid=process.pid, url=url, log=log)
    finally:
        _stop(process)


@contextmanager
def serve(
    models: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    ready_timeout_s: float = 60.0,
    extra_args: tuple[str, ...] = (),
) -> Iterator[RunningService]:
    """`python -m service` on a free 127.0.0.1 port, ready once /v2/health/ready answers 200."""
    port = free_port()
    command = [sys.executable, "-m", "service", "--models", str(models), "--host", "127.0.0.1", "--port", str(port)]
    with running(
        [*command, *extra_args], f"http://127.0.0.1:{port}", "/v2/health/ready", log, env, ready_timeout_s
    ) as s:
        yield s


def ensure_open_files(needed: int) -> bool:
    """Raise this process's soft limit on open files to `needed` (processes started later inherit it); False
    where the hard limit is lower. wrk and the server each hold a socket per connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        return False
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return True


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident memory of a process now, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for process {pid}")


SERVING = r"service\.repository: serving \["  # a worker's "models loaded" log line


def worker_pids(log: Path, pattern: str) -> list[int]:
    """PIDs of the worker processes that logged a line matching `pattern` (the worker log format names them)."""
    return sorted({int(pid) for pid in re.findall(r"\[(\d+)\] " + pattern, log.read_text(errors="replace"))})


def wait_workers(log: Path, workers: int, deadline_s: float = 60.0) -> list[int]:
    """Readiness answers from one worker; the log says when each has loaded its models. Returns their PIDs."""
    deadline = time.monotonic() + deadline_s
    while len(pids := worker_pids(log, SERVING)) < workers:
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"only workers {pids} loaded their models; {log} ends with:\n{tail}")
        time.sleep(0.1)
    return pids


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())
