"""locust: the project's locustfile run headless as a subprocess, its final statistics read back."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from modelrepo.dataset import DEFAULT_DATA_DIR

LOCUSTFILE = Path(__file__).resolve().parents[2] / "deploy" / "locust" / "locustfile.py"
# Points of the latency CDF read from locust's response-time histogram, as fractions.
PERCENTILES = (0.5, 0.66, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 1.0)
RAMP_S = 1  # locust's run time beyond a paced load's measured seconds: starting its users


@dataclass(frozen=True)
class LoadStats:
    """What the clients saw, end to end, over all request names (locust's final JSON statistics).

    Locust's CSV is written before the last requests finish; its `--json-file` holds the final numbers.
    """

    requests: int
    failures: int
    requests_per_s: float
    percentiles_ms: dict[float, float]
    by_name: dict[str, int]
    cdf: list[tuple[float, float]]  # (ms, fraction of requests at or below), from locust's histogram
    started: float = math.nan  # Unix time of the first request (or of the statistics' reset)
    ended: float = math.nan  # ... and of the last request

    def p(self, fraction: float) -> float:
        return self.percentiles_ms[fraction]


def _cumulative(histogram: Counter[float]) -> list[tuple[float, int]]:
    """(response time in ms as locust rounded it, requests at or below it), in increasing time."""
    seen, points = 0, []
    for value in sorted(histogram):
        seen += histogram[value]
        points.append((value, seen))
    return points


def _percentile(cumulative: list[tuple[float, int]], fraction: float) -> float:
    """The smallest response time with at least `fraction` of requests at or below it."""
    count = cumulative[-1][1]
    return next((value for value, seen in cumulative if seen >= fraction * count), math.nan)


def read_stats(stats_json: Path) -> LoadStats:
    entries = json.loads(stats_json.read_text())
    if not entries:
        raise ValueError(f"{stats_json} holds no statistics: did locust run any request?")
    histogram: Counter[float] = Counter()
    for entry in entries:
        histogram.update({float(ms): n for ms, n in entry["response_times"].items()})
    cumulative = _cumulative(histogram)
    requests = sum(e["num_requests"] for e in entries)
    started = min(e["start_time"] for e in entries)
    ended = max(e["last_request_timestamp"] or started for e in entries)
    elapsed = ended - started
    return LoadStats(
        requests=requests,
        failures=sum(e["num_failures"] for e in entries),
        requests_per_s=requests / elapsed if elapsed > 0 else math.nan,
        percentiles_ms={q: _percentile(cumulative, q) for q in PERCENTILES},
        by_name={e["name"]: e["num_requests"] for e in entries},
        cdf=[(value, seen / cumulative[-1][1]) for value, seen in cumulative],
        started=started,
        ended=ended,
    )


@dataclass(frozen=True)
class LoadSettings:
    users: int = 8
    duration_s: int = 30
    data_dir: str = DEFAULT_DATA_DIR


@dataclass(frozen=True)
class LocustRun:
    """How locust ended, and the final statistics it wrote."""

    exit_code: int  # non-zero when any request failed
    stats: LoadStats
    stderr_tail: str


@dataclass(frozen=True)
class PacedLoad:
    """Users that each send `rate_per_user` requests/s (0: as fast as answered), from `processes` processes.

    Every user starts at once, each at a random moment of its first period, and the statistics are reset then
    (`--reset-stats`), so what they measure is the steady rate without the ramp."""

    users: int
    rate_per_user: float
    duration_s: int
    tags: tuple[str, ...]
    processes: int = 1
    options: tuple[str, ...] = ()  # more locustfile options, e.g. the v2 body
    data_dir: str = DEFAULT_DATA_DIR


def paced_command(host: str, prefix: Path, load: PacedLoad) -> tuple[list[str], dict[str, str]]:
    """The locust command line and the environment it adds, writing `<prefix>.json` and `<prefix>_*.csv`."""
    users = str(load.users)
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host]
    run_time = f"{load.duration_s + RAMP_S}s"  # the statistics start once every user has started
    command += ["--users", users, "--spawn-rate", users, "--run-time", run_time, "--stop-timeout", "5"]
    command += ["--reset-stats", "--only-summary", "--csv", str(prefix), "--json-file", str(prefix)]
    command += ["--data-dir", load.data_dir, "--tags", *load.tags, *load.options]
    if load.processes > 1:
        command += ["--processes", str(load.processes)]
    return command, {"LOCUST_RATE_PER_USER": repr(load.rate_per_user)}


def launch_locust(host: str, tags: Sequence[str], prefix: Path, load: LoadSettings) -> LocustRun:
    """The project's locustfile, headless: fixed users (all spawned at once) for a fixed duration, the requests
    tagged `tags`. Failed requests are counted, not raised; raises only when locust wrote no statistics.

    Writes `<prefix>.json` (final statistics), `<prefix>.html` and locust's `<prefix>_*.csv` (with the history).
    """
    prefix.parent.mkdir(parents=True, exist_ok=True)
    users, seconds = str(load.users), f"{load.duration_s}s"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host]
    command += ["--users", users, "--spawn-rate", users, "--run-time", seconds, "--stop-timeout", "10"]
    command += ["--only-summary", "--csv", str(prefix), "--html", f"{prefix}.html", "--json-file", str(prefix)]
    command += ["--data-dir", load.data_dir, "--tags", *tags]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    stats_json = Path(f"{prefix}.json")
    if not stats_json.exists():
        raise RuntimeError(f"locust wrote no statistics (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return LocustRun(result.returncode, read_stats(stats_json), result.stderr[-3000:])


def run_locust(host: str, tags: Sequence[str], prefix: Path, load: LoadSettings) -> LoadStats:
    """`launch_locust` where every request must succeed: a non-zero locust exit (any failure) raises."""
    run = launch_locust(host, tags, prefix, load)
    if run.exit_code != 0:
        raise RuntimeError(f"locust failed (exit {run.exit_code}):\n{run.stderr_tail}")
    return run.stats
