"""What a soak is asked to do and what it found; `<out>/soak.json` is `SoakResult` as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from modelrepo.dataset import DEFAULT_DATA_DIR

TAGS = ("student", "teacher", "cascade", "compare")  # every kind of request the locustfile sends
MAX_RSS_GROWTH = 0.10  # from the end of the warm-up to the end of the run


@dataclass(frozen=True)
class SoakSettings:
    models: Path
    out: Path
    minutes: float = 10.0
    users: int = 8
    data_dir: str = DEFAULT_DATA_DIR
    sample_every_s: float = 5.0


@dataclass(frozen=True)
class SoakResult:
    settings: SoakSettings
    requests: int
    failures: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    by_name: dict[str, int]  # requests per locust request name
    locust_exit: int
    p99_over_time: list[tuple[float, float, float]]  # (seconds, p99 ms of the last ~10 s, requests/s)
    rss_samples: list[tuple[float, int]]  # (seconds since start, bytes)
    rss_before_load_bytes: int
    rss_start_bytes: int  # once the warm-up is over
    rss_end_bytes: int
    rss_growth: float  # end over start, less 1
    warmup_s: float
    passed: bool  # no failure, and RSS grew less than MAX_RSS_GROWTH


def write_soak_result(result: SoakResult, path: Path) -> None:
    path.write_text(json.dumps(asdict(result), indent=2, default=str))  # default: the settings' paths
