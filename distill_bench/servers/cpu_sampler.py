"""CPU time of process trees and of the whole machine, sampled in the background, read back over any window.

A load generator and a server each run as a tree of processes (locust `--processes`, uvicorn workers); the
window that matters (the load generator's measured seconds) is only known once the run is over, so samples are
taken all along and interpolated afterwards.
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from collections.abc import Sequence
from types import TracebackType

import psutil

Samples = list[tuple[float, float]]  # (Unix time, CPU seconds so far), increasing in time


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live descendants, plus the children it has reaped."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    used = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:  # ended between the listing and now; its parent has or will reap it
            continue
        used += times.user + times.system + times.children_user + times.children_system
    return used


def busy_seconds_per_cpu() -> list[float]:
    """CPU seconds each of the machine's CPUs has spent on anything but idling."""
    return [float(sum(t) - t.idle - getattr(t, "iowait", 0.0)) for t in psutil.cpu_times(percpu=True)]


class CpuSampler:
    """Samples the named process trees and each CPU of the machine (`cpu0`, `cpu1`, ...) every `every_s` seconds
    until the block ends."""

    def __init__(self, every_s: float = 0.25) -> None:
        self.every_s = every_s
        self.samples: dict[str, Samples] = {}
        self._pids: dict[str, int] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def watch(self, name: str, pid: int) -> None:
        with self._lock:
            self._pids[name] = pid
            self.samples.setdefault(name, [])
        self._sample_one(name, pid)

    def _sample_one(self, name: str, pid: int) -> None:
        used, now = tree_cpu_seconds(pid), time.time()
        if not math.isnan(used):  # NaN once the process is gone: nothing more to learn from it
            with self._lock:
                self.samples[name].append((now, used))

    def _run(self) -> None:
        while not self._done.wait(self.every_s):
            with self._lock:
                pids = dict(self._pids)
            for name, pid in pids.items():
                self._sample_one(name, pid)
            self._sample_cpus()

    def _sample_cpus(self) -> None:
        now = time.time()
        with self._lock:
            for cpu, busy in enumerate(busy_seconds_per_cpu()):
                self.samples.setdefault(f"cpu{cpu}", []).append((now, busy))

    def __enter__(self) -> CpuSampler:
        self._sample_cpus()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._done.set()
        self._thread.join()


def _at(samples: Sequence[tuple[float, float]], when: float) -> float:
    """CPU seconds at `when`, linear between the samples around it (clamped to the first and last)."""
    i = bisect_left(samples, (when, float("-inf")))
    if i == 0:
        return samples[0][1]
    if i == len(samples):
        return samples[-1][1]
    (t0, c0), (t1, c1) = samples[i - 1], samples[i]
    return c0 + (c1 - c0) * (when - t0) / (t1 - t0) if t1 > t0 else c1


def cores_used(samples: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """Mean cores busy over the part of [start, end] the samples cover; NaN where they cover none of it."""
    if not samples:
        return float("nan")
    start, end = max(start, samples[0][0]), min(end, samples[-1][0])
    if end <= start:
        return float("nan")
    return (_at(samples, end) - _at(samples, start)) / (end - start)
