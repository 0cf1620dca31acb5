"""What `demo` records in `<raw>/run.json` beside the scrapes and locust's statistics of each phase."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import TypeAdapter

from distill_bench.results.machine import Machine
from modelrepo.card import ModelCard, Role


@dataclass(frozen=True)
class Phase:
    """One model loaded alone; its scrapes and statistics are `<raw>/<name>_before.prom`, `_after.prom`, `.json`."""

    name: str
    model: str
    role: Role
    cpu_seconds: float  # the service process's, over the phase
    wall_seconds: float


@dataclass(frozen=True)
class CardSummary:
    """What the report needs of a card: its role and the figures measured at export."""

    role: Role
    teacher: str | None
    version: int
    test_accuracy: float
    parameters: int
    size_bytes: int

    @classmethod
    def of(cls, card: ModelCard) -> CardSummary:
        record = card.versions[card.latest_version]
        return cls(
            card.role, card.teacher, card.latest_version, record.test_accuracy, record.parameters, record.size_bytes
        )


@dataclass(frozen=True)
class DemoRun:
    started: str  # ISO 8601, UTC
    machine: Machine
    models_dir: str
    raw_dir: str
    locustfile: str
    users: int
    duration_s: int  # of each phase
    phases: list[Phase]
    cards: dict[str, CardSummary]  # model name -> summary


_ADAPTER: TypeAdapter[DemoRun] = TypeAdapter(DemoRun)
RUN_FILE = "run.json"


def write_demo_run(run: DemoRun, raw: Path) -> None:
    (raw / RUN_FILE).write_text(json.dumps(asdict(run), indent=2) + "\n")


def read_demo_run(raw: Path) -> DemoRun:
    return _ADAPTER.validate_python(json.loads((raw / RUN_FILE).read_text()))
