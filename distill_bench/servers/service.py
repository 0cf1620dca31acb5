"""The service under test, `python -m service`, as a real process: started with the settings a run states
(environment variables), ready once `/v2/health/ready` answers 200; and its worker processes, found in its log."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from distill_bench.servers.process import RunningService, free_port, pinned, running

SERVING = r"service\.repository: serving \["  # a worker's "models loaded" log line


@contextmanager
def serve(
    models: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    ready_timeout_s: float = 60.0,
    extra_args: tuple[str, ...] = (),
    cpus: Sequence[int] | None = None,
    prefix: tuple[str, ...] = (),
) -> Iterator[RunningService]:
    """`python -m service` on a free 127.0.0.1 port, with `env` (`DISTILL_*` settings) over this process's own,
    confined to `cpus` when given. `prefix`: a command that runs it, e.g. `prlimit --nofile=256 --` (its PID is
    then the prefix's, which execs)."""
    port = free_port()
    command = [*prefix, sys.executable, "-m", "service", "--models", str(models), "--host", "127.0.0.1"]
    command = pinned([*command, "--port", str(port), *extra_args], cpus)
    with running(command, f"http://127.0.0.1:{port}", "/v2/health/ready", log, env, ready_timeout_s) as s:
        yield s


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
