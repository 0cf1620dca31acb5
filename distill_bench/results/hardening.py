"""What `hardening` measures of a service under hostile load; `<out>/hardening.json` is `HardeningResult` as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from distill_bench.results.machine import Machine


@dataclass(frozen=True)
class HardeningSettings:
    models: Path
    out: Path
    uploads: int = 40  # concurrent uploads of one large PNG
    image_side: int = 4096  # the PNG is side x side RGBA: within the default pixel limit
    decode_clients: int = 8  # clients uploading large PNGs while the live probe runs
    probe_s: float = 10.0
    slow_bodies: int = 512  # connections that send headers and one byte of body, reopened when closed
    valid_clients: int = 4
    shutdown_rounds: int = 3
    shutdown_clients: int = 10
    workers: int = 2


@dataclass(frozen=True)
class Uploads:
    """Concurrent uploads of a large (legal) image: what the process's memory did, and what each client got."""

    png_bytes: int
    rss_before_mb: float
    rss_peak_mb: float
    statuses: dict[int, int]  # HTTP status -> count; 0 = no answer (connection failed)


@dataclass(frozen=True)
class LiveProbe:
    """`/v2/health/live` latency while clients upload large images."""

    probes: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    uploads_answered: int


@dataclass(frozen=True)
class SlowBodies:
    """Valid inference requests while connections hold a half-sent body."""

    held_connections: int
    reopened: int  # slow connections the server closed, reopened at once
    valid_requests: int
    valid_ok: int


@dataclass(frozen=True)
class Shutdown:
    """SIGTERM to the parent of several workers under load, per round."""

    answered: list[int]
    refused: list[int]  # the connection was refused: the request was never sent, the client may retry elsewhere
    dropped: list[int]  # sent on an accepted connection, and never answered


@dataclass(frozen=True)
class HardeningResult:
    settings: HardeningSettings
    machine: Machine
    uploads: Uploads
    live: LiveProbe
    slow_bodies: SlowBodies
    shutdown: Shutdown


def write_hardening_result(result: HardeningResult, path: Path) -> None:
    path.write_text(json.dumps(asdict(result), indent=2, default=str))  # default: the settings' paths
