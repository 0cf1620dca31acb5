"""Any server command as a real subprocess on a free 127.0.0.1 port: ready once a URL answers 200, stopped by
its PID when the block ends."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def pinned(command: list[str], cpus: Sequence[int] | None) -> list[str]:
    """`command` confined to `cpus` by taskset (util-linux), it and every thread and process it starts."""
    if not cpus:
        return command
    if shutil.which("taskset") is None:
        raise RuntimeError("pinning to CPUs needs taskset (Debian package util-linux); or do not pin")
    return ["taskset", "--cpu-list", ",".join(map(str, cpus)), *command]


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


def ensure_open_files(needed: int) -> bool:
    """Raise this process's soft limit on open files to `needed` (processes started later inherit it); False
    where the hard limit is lower. wrk and the server each hold a socket per connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        return False
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return True
