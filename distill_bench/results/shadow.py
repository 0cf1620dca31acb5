"""What `shadow` measures: the student's answers with shadow traffic off and at every request; the raw record is
`<out>/shadow-raw/shadow.json` (`ShadowRun` as JSON), the report reads it back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distill_bench.results.machine import Machine


@dataclass(frozen=True)
class ShadowSettings:
    models: Path
    out: Path
    duration_s: int = 6  # per wrk run
    rates: tuple[float, ...] = (0.0, 0.1, 1.0)  # DISTILL_SHADOW_RATE of each service, in this order every round
    connections: tuple[int, ...] = (1, 8)  # 1: latency one request at a time; 8: the student saturating the cores
    rounds: int = 2  # the rates alternate round after round: these machines drift


@dataclass(frozen=True)
class Point:
    """One wrk run against the student: what its clients saw, and what the service's processes used."""

    rate: float
    round: int
    body: str  # v2 (JSON tensor to the student) or classify (/v1/classify, JSON pixel rows)
    connections: int
    requests: int
    requests_per_s: float
    p50_us: float
    p99_us: float
    mean_us: float
    failed: int  # socket errors and non-2xx answers
    service_cpu_s: float


@dataclass(frozen=True)
class ShadowCounts:
    """The service's own shadow figures over one round at one rate (its /metrics before and after)."""

    rate: float
    round: int
    outcomes: dict[str, float]  # distill_shadow_requests_total by outcome
    agreement: dict[str, float]  # agree / disagree with source="shadow"
    student_p50_s: float  # distill_shadow_compute_seconds, role=student
    teacher_p50_s: float


@dataclass(frozen=True)
class ShadowRun:
    settings: ShadowSettings
    machine: Machine
    started: str
    student: str
    teacher: str
    points: list[Point] = field(default_factory=list)
    counts: list[ShadowCounts] = field(default_factory=list)


def write_shadow_run(run: ShadowRun, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(run), indent=2, default=str))


def read_shadow_run(path: Path) -> ShadowRun:
    doc: dict[str, Any] = json.loads(path.read_text())
    s = doc["settings"]
    settings = ShadowSettings(
        Path(s["models"]), Path(s["out"]), s["duration_s"], tuple(s["rates"]), tuple(s["connections"]), s["rounds"]
    )
    return ShadowRun(
        settings, Machine(**doc["machine"]), doc["started"], doc["student"], doc["teacher"],
        [Point(**p) for p in doc["points"]], [ShadowCounts(**c) for c in doc["counts"]],
    )  # fmt: skip
