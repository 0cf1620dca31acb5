"""`make demo`'s measuring half: serve the model repository, load teacher and student in turn, write the report."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from distill_bench.load import LoadSettings, run_locust
from distill_bench.machine import machine
from distill_bench.pair import student_and_teacher
from distill_bench.server import RunningService, cpu_seconds, fetch, serve
from distill_bench.speedup import write_report
from modelrepo.card import ModelCard


def _summary(card: ModelCard) -> dict[str, Any]:
    """What the report needs of a card: its role and the figures measured at export."""
    record = card.versions[card.latest_version]
    return {
        "role": card.role,
        "teacher": card.teacher,
        "version": card.latest_version,
        "test_accuracy": record.test_accuracy,
        "parameters": record.parameters,
        "size_bytes": record.size_bytes,
    }


def _measure_phase(service: RunningService, role: str, model: str, raw: Path, load: LoadSettings) -> dict[str, Any]:
    """Load one model alone; record /metrics before and after, the locust CSVs and the service's CPU time."""
    print(f"loading {model} ({role}): {load.users} users for {load.duration_s} s ...", flush=True)
    before = fetch(f"{service.url}/metrics")
    cpu_before, wall_before = cpu_seconds(service.pid), time.monotonic()
    stats = run_locust(service.url, [role], raw / role, load)
    cpu_after, wall_after = cpu_seconds(service.pid), time.monotonic()
    after = fetch(f"{service.url}/metrics")
    (raw / f"{role}_before.prom").write_text(before)
    (raw / f"{role}_after.prom").write_text(after)
    print(f"  {stats.requests} requests, {stats.failures} failures, {stats.requests_per_s:.0f} req/s", flush=True)
    return {
        "name": role,
        "model": model,
        "role": role,
        "cpu_seconds": cpu_after - cpu_before,
        "wall_seconds": wall_after - wall_before,
    }


def run_demo(models: Path, out: Path, load: LoadSettings) -> dict[str, Any]:
    raw = out / "speedup-raw"
    raw.mkdir(parents=True, exist_ok=True)
    pair = student_and_teacher(models)
    student, teacher = pair.student.name, pair.teacher.name
    cards = {card.name: _summary(card) for card in (pair.student, pair.teacher)}
    started = datetime.now(UTC).isoformat(timespec="seconds")
    with serve(models, log=raw / "service.log") as service:
        phases = [
            _measure_phase(service, role, model, raw, load)
            for role, model in (("student", student), ("teacher", teacher))
        ]
    run = {
        "started": started,
        "machine": machine(),
        "models_dir": str(models),
        "raw_dir": str(raw),
        "locustfile": "deploy/locust/locustfile.py",
        "users": load.users,
        "duration_s": load.duration_s,
        "phases": phases,
        "cards": cards,
    }
    (raw / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    return write_report(raw, out)
