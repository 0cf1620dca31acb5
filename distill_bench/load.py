"""Run the project's locustfile headless and read back its CSV statistics."""

from __future__ import annotations

import csv
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LOCUSTFILE = Path(__file__).resolve().parent.parent / "deploy" / "locust" / "locustfile.py"
# Locust's CSV percentile columns, as fractions; the points of its latency CDF.
PERCENTILES = (0.5, 0.66, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0)


@dataclass(frozen=True)
class LoadStats:
    """Locust's aggregated row: what the clients saw, end to end."""

    requests: int
    failures: int
    requests_per_s: float
    percentiles_ms: dict[float, float]

    def p(self, fraction: float) -> float:
        return self.percentiles_ms[fraction]


def _column(fraction: float) -> str:
    text = f"{fraction * 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def read_stats(stats_csv: Path) -> LoadStats:
    with stats_csv.open(newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["Name"] == "Aggregated"]
    if not rows:
        raise ValueError(f"{stats_csv} has no Aggregated row: did locust run any request?")
    row = rows[0]
    return LoadStats(
        requests=int(row["Request Count"]),
        failures=int(row["Failure Count"]),
        requests_per_s=float(row["Requests/s"]),
        percentiles_ms={q: float(row[_column(q)]) for q in PERCENTILES},
    )


@dataclass(frozen=True)
class LoadSettings:
    users: int = 8
    duration_s: int = 30
    data_dir: str = "/usr/share/datasets/fashion-mnist"


def run_locust(host: str, tags: list[str], csv_prefix: Path, load: LoadSettings) -> LoadStats:
    """Fixed users (all spawned at once), fixed duration; a non-zero locust exit (any failure) raises."""
    users = load.users
    csv_prefix.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--run-time",
        f"{load.duration_s}s",
        "--stop-timeout",
        "10",
        "--only-summary",
        "--csv",
        str(csv_prefix),
        "--html",
        f"{csv_prefix}.html",
        "--data-dir",
        load.data_dir,
        "--tags",
        *tags,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"locust failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return read_stats(Path(f"{csv_prefix}_stats.csv"))
