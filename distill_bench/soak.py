"""Soak: the service under a steady locust load for minutes; requests, failures, p99 over time and the process's
RSS from start to end. Writes `<out>/soak.md`, `soak.json` and `soak.png`; fails on any failure or RSS growth.

RSS is sampled from /proc every few seconds. "Start" is the RSS once the warm-up (the first tenth of the run,
at least 15 s) is over: allocators, thread pools and onnxruntime's arenas grow to their working size in the
first seconds of load, and that is not a leak. The RSS before any load is reported too.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from distill_bench.load import LOCUSTFILE, read_stats
from distill_bench.server import rss_bytes, serve

TAGS = ["student", "teacher", "cascade", "compare"]
MAX_RSS_GROWTH = 0.10


@dataclass(frozen=True)
class SoakSettings:
    models: Path
    out: Path
    minutes: float = 10.0
    users: int = 8
    data_dir: str = "/usr/share/datasets/fashion-mnist"
    sample_every_s: float = 5.0


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


def _locust(host: str, prefix: Path, settings: SoakSettings) -> int:
    """Run locust headless; unlike `load.run_locust`, failures are counted and reported, not raised."""
    users, seconds = str(settings.users), f"{round(settings.minutes * 60)}s"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host]
    command += ["--users", users, "--spawn-rate", users, "--run-time", seconds, "--stop-timeout", "10"]
    command += ["--only-summary", "--csv", str(prefix), "--json-file", str(prefix), "--data-dir", settings.data_dir]
    command += ["--tags", *TAGS]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if not Path(f"{prefix}.json").exists():
        raise RuntimeError(f"locust wrote no statistics (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return result.returncode


def p99_over_time(history_csv: Path) -> list[tuple[float, float, float]]:
    """(seconds, p99 ms of the last ~10 s, requests/s) of all requests together, from locust's history CSV."""
    points = []
    with history_csv.open() as f:
        rows = [r for r in csv.DictReader(f) if r["Name"] == "Aggregated" and r["99%"] not in ("N/A", "")]
    start = float(rows[0]["Timestamp"]) if rows else 0.0
    for r in rows:
        points.append((float(r["Timestamp"]) - start, float(r["99%"]), float(r["Requests/s"])))
    return points


def run_soak(settings: SoakSettings) -> dict[str, object]:
    raw = settings.out / "soak-raw"
    raw.mkdir(parents=True, exist_ok=True)
    with serve(settings.models, raw / "service.log") as service:
        before_load = rss_bytes(service.pid)
        sampler = RssSampler(service.pid, settings.sample_every_s)
        sampler.start()
        try:
            locust_exit = _locust(service.url, raw / "locust", settings)
        finally:
            sampler.stop()
    stats = read_stats(raw / "locust.json")
    warmup_s = max(15.0, settings.minutes * 6.0)
    rss = sampler.samples
    start = next((b for t, b in rss if t >= warmup_s), rss[0][1])
    end = rss[-1][1]
    growth = (end - start) / start
    return {
        "settings": {**asdict(settings), "models": str(settings.models), "out": str(settings.out)},
        "requests": stats.requests,
        "failures": stats.failures,
        "requests_per_s": stats.requests_per_s,
        "p50_ms": stats.p(0.5),
        "p99_ms": stats.p(0.99),
        "by_name": stats.by_name,
        "locust_exit": locust_exit,
        "p99_over_time": p99_over_time(raw / "locust_stats_history.csv"),
        "rss_samples": rss,
        "rss_before_load_bytes": before_load,
        "rss_start_bytes": start,
        "rss_end_bytes": end,
        "rss_growth": growth,
        "warmup_s": warmup_s,
        "passed": stats.failures == 0 and growth < MAX_RSS_GROWTH,
    }


def _plot(result: dict[str, object], path: Path) -> None:
    p99 = result["p99_over_time"]
    rss = result["rss_samples"]
    assert isinstance(p99, list) and isinstance(rss, list)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot([t for t, _, _ in p99], [ms for _, ms, _ in p99], color="tab:red")
    top.set_ylabel("p99 latency, ms (last ~10 s)")
    top.grid(alpha=0.3)
    bottom.plot([t for t, _ in rss], [b / 2**20 for _, b in rss], color="tab:blue")
    bottom.axvline(float(str(result["warmup_s"])), color="grey", linestyle="--", label="end of warm-up (start)")
    bottom.set_ylabel("service RSS, MiB")
    bottom.set_xlabel("seconds")
    bottom.legend()
    bottom.grid(alpha=0.3)
    fig.suptitle("Soak: p99 latency and memory over time")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _mib(value: object) -> str:
    return f"{float(str(value)) / 2**20:.1f} MiB"


def write_soak_report(result: dict[str, object], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(result, indent=2))
    _plot(result, out / "soak.png")
    settings = result["settings"]
    assert isinstance(settings, dict)
    p99 = result["p99_over_time"]
    assert isinstance(p99, list)
    minute_rows = []
    for minute in range(math.ceil(float(settings["minutes"]))):
        window = [ms for t, ms, _ in p99 if minute * 60 <= t < (minute + 1) * 60]
        if window:
            minute_rows.append(f"| {minute + 1} | {max(window):.0f} | {sorted(window)[len(window) // 2]:.0f} |")
    verdict = "PASSED" if result["passed"] else "FAILED"
    lines = [
        "# Soak report",
        "",
        f"**{verdict}**: {result['requests']} requests, {result['failures']} failures (must be 0); service RSS "
        f"{_mib(result['rss_start_bytes'])} after warm-up -> {_mib(result['rss_end_bytes'])} at the end "
        f"({float(str(result['rss_growth'])):+.1%}; must stay under +{MAX_RSS_GROWTH:.0%}).",
        "",
        f"Setup: {settings['minutes']} min of locust, {settings['users']} users, no wait between requests, tags "
        f"{', '.join(TAGS)}; models `{settings['models']}`; RSS sampled every {settings['sample_every_s']} s "
        f"(before any load: {_mib(result['rss_before_load_bytes'])}; warm-up: first {result['warmup_s']:.0f} s).",
        "",
        "| requests | failures | requests/s | p50 ms | p99 ms |",
        "|---|---|---|---|---|",
        f"| {result['requests']} | {result['failures']} | {float(str(result['requests_per_s'])):.1f} | "
        f"{result['p50_ms']:.0f} | {result['p99_ms']:.0f} |",
        "",
        "p99 over time (locust's rolling window, per minute of the run):",
        "",
        "| minute | worst p99 ms | median p99 ms |",
        "|---|---|---|",
        *minute_rows,
        "",
        "![p99 and RSS over time](soak.png)",
        "",
    ]
    path = out / "soak.md"
    path.write_text("\n".join(lines))
    return path
