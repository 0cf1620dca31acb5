"""`make demo`'s same-load half: serve the model repository, load student then teacher alone, record both."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from distill_bench.drivers.locust import LOCUSTFILE, LoadSettings, run_locust
from distill_bench.pair import student_and_teacher
from distill_bench.results.demo import CardSummary, DemoRun, Phase, write_demo_run
from distill_bench.results.machine import this_machine
from distill_bench.scrape import fetch_metrics
from distill_bench.servers.process import RunningService
from distill_bench.servers.procfs import cpu_seconds
from distill_bench.servers.service import serve
from modelrepo.card import ModelCard


def _measure_phase(service: RunningService, card: ModelCard, raw: Path, load: LoadSettings) -> Phase:
    """Load one model alone; record /metrics before and after, locust's statistics and the service's CPU time."""
    role = card.role
    print(f"loading {card.name} ({role}): {load.users} users for {load.duration_s} s ...", flush=True)
    before = fetch_metrics(service.url)
    cpu_before, wall_before = cpu_seconds(service.pid), time.monotonic()
    stats = run_locust(service.url, [role], raw / role, load)
    cpu_after, wall_after = cpu_seconds(service.pid), time.monotonic()
    after = fetch_metrics(service.url)
    (raw / f"{role}_before.prom").write_text(before)
    (raw / f"{role}_after.prom").write_text(after)
    print(f"  {stats.requests} requests, {stats.failures} failures, {stats.requests_per_s:.0f} req/s", flush=True)
    return Phase(
        name=role, model=card.name, role=role, cpu_seconds=cpu_after - cpu_before, wall_seconds=wall_after - wall_before
    )


def run_demo(models: Path, out: Path, load: LoadSettings) -> Path:
    """Record the phases under `<out>/speedup-raw` (the speedup report reads them); return that folder."""
    raw = out / "speedup-raw"
    raw.mkdir(parents=True, exist_ok=True)
    pair = student_and_teacher(models)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    with serve(models, log=raw / "service.log") as service:
        phases = [_measure_phase(service, card, raw, load) for card in (pair.student, pair.teacher)]
    run = DemoRun(
        started=started,
        machine=this_machine(),
        models_dir=str(models),
        raw_dir=str(raw),
        locustfile=str(LOCUSTFILE.relative_to(LOCUSTFILE.parents[2])),
        users=load.users,
        duration_s=load.duration_s,
        phases=phases,
        cards={card.name: CardSummary.of(card) for card in (pair.student, pair.teacher)},
    )
    write_demo_run(run, raw)
    return raw
