"""Soak: the service under a steady locust load for minutes; requests, failures, p99 over time and the process's
RSS from start to end. Fails on any failure or RSS growth.

RSS is sampled from /proc every few seconds. "Start" is the RSS once the warm-up (the first tenth of the run,
at least 15 s) is over: allocators, thread pools and onnxruntime's arenas grow to their working size in the
first seconds of load, and that is not a leak. The RSS before any load is reported too.
"""

from __future__ import annotations

import csv
import threading
import time
from pathlib import Path

from distill_bench.drivers.locust import LoadSettings, launch_locust
from distill_bench.results.soak import MAX_RSS_GROWTH, TAGS, SoakResult, SoakSettings
from distill_bench.servers.procfs import rss_bytes
from distill_bench.servers.service import serve


class RssSampler(threading.Thread):
    """(seconds since start, RSS bytes) of one process, every `every_s` until stopped."""

    def __init__(self, pid: int, every_s: float) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid, self.every_s = pid, every_s
        self.samples: list[tuple[float, int]] = []
        self.started_at = time.monotonic()
        self._done = threading.Event()

    def run(self) -> None:
        while True:
            self.samples.append((time.monotonic() - self.started_at, rss_bytes(self.pid)))
            if self._done.wait(self.every_s):
                return

    def stop(self) -> None:
        self._done.set()
        self.join()


def p99_over_time(history_csv: Path) -> list[tuple[float, float, float]]:
    """(seconds, p99 ms of the last ~10 s, requests/s) of all requests together, from locust's history CSV."""
    points = []
    with history_csv.open() as f:
        rows = [r for r in csv.DictReader(f) if r["Name"] == "Aggregated" and r["99%"] not in ("N/A", "")]
    start = float(rows[0]["Timestamp"]) if rows else 0.0
    for r in rows:
        points.append((float(r["Timestamp"]) - start, float(r["99%"]), float(r["Requests/s"])))
    return points


def run_soak(settings: SoakSettings) -> SoakResult:
    raw = settings.out / "soak-raw"
    raw.mkdir(parents=True, exist_ok=True)
    load = LoadSettings(settings.users, round(settings.minutes * 60), settings.data_dir)
    with serve(settings.models, raw / "service.log") as service:
        before_load = rss_bytes(service.pid)
        sampler = RssSampler(service.pid, settings.sample_every_s)
        sampler.start()
        try:
            locust = launch_locust(service.url, TAGS, raw / "locust", load)  # failures are counted, not raised
        finally:
            sampler.stop()
    stats = locust.stats
    warmup_s = max(15.0, settings.minutes * 6.0)
    rss = sampler.samples
    start = next((b for t, b in rss if t >= warmup_s), rss[0][1])
    end = rss[-1][1]
    growth = (end - start) / start
    return SoakResult(
        settings=settings,
        requests=stats.requests,
        failures=stats.failures,
        requests_per_s=stats.requests_per_s,
        p50_ms=stats.p(0.5),
        p99_ms=stats.p(0.99),
        by_name=stats.by_name,
        locust_exit=locust.exit_code,
        p99_over_time=p99_over_time(raw / "locust_stats_history.csv"),
        rss_samples=rss,
        rss_before_load_bytes=before_load,
        rss_start_bytes=start,
        rss_end_bytes=end,
        rss_growth=growth,
        warmup_s=warmup_s,
        passed=stats.failures == 0 and growth < MAX_RSS_GROWTH,
    )
