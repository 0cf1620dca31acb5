"""The shadow traffic report: `<out>/shadow.md`, from the recorded run."""

from __future__ import annotations

import statistics
from pathlib import Path

from distill_bench.results.shadow import Point, ShadowRun


def _median(points: list[Point], key: str) -> float:
    return float(statistics.median(float(getattr(p, key)) for p in points))


def _rows(run: ShadowRun) -> list[str]:
    rows = []
    s = run.settings
    for body in ("v2", "classify"):
        for connections in s.connections:
            cells = []
            for rate in s.rates:
                points = [p for p in run.points if (p.body, p.connections, p.rate) == (body, connections, rate)]
                cpu_ms = sum(p.service_cpu_s for p in points) / max(1, sum(p.requests for p in points)) * 1e3
                cells.append(
                    f"{_median(points, 'p50_us'):.0f} / {_median(points, 'p99_us'):.0f} us, "
                    f"{_median(points, 'requests_per_s'):.0f} req/s, {cpu_ms:.3f} ms CPU, "
                    f"{sum(p.failed for p in points)} failed"
                )
            rows.append(f"| {body} | {connections} | " + " | ".join(cells) + " |")
    return rows


def _counts(run: ShadowRun) -> list[str]:
    lines = []
    for c in run.counts:
        if c.rate == 0:
            continue
        rows = c.agreement.get("agree", 0) + c.agreement.get("disagree", 0)
        agreement = f"{c.agreement.get('agree', 0) / rows:.1%} of {rows:.0f} rows" if rows else "no rows"
        speedup = c.teacher_p50_s / c.student_p50_s if c.student_p50_s > 0 else float("nan")
        outcomes = ", ".join(f"{v:.0f} {k}" for k, v in sorted(c.outcomes.items())) or "none"
        lines.append(
            f"| {c.rate:g} | {c.round} | {outcomes} | {agreement} | {c.student_p50_s * 1e6:.0f} us / "
            f"{c.teacher_p50_s * 1e6:.0f} us ({speedup:.1f}x) |"
        )
    return lines


def write_shadow_report(run: ShadowRun, out: Path) -> Path:
    s, m = run.settings, run.machine
    rates = " | ".join(f"shadow {r:g}: p50 / p99, throughput, service CPU per request" for r in s.rates)
    lines = [
        "# Shadow traffic: what it costs the student's answers",
        "",
        f"Machine: {m.cpu}, {m.cores} cores, {m.platform}, Python {m.python}. Started {run.started}. Models "
        f"`{s.models}`: student `{run.student}`, teacher `{run.teacher}`. wrk against the student, {s.duration_s} s "
        f"per run, {s.rounds} rounds alternating the rates {list(s.rates)}, each a fresh service with its defaults "
        "but `DISTILL_SHADOW_RATE`; medians over the rounds. `v2`: a JSON tensor to the student's v2 infer; "
        "`classify`: `/v1/classify?route=student` with one JSON row of raw pixels.",
        "",
        f"| body | connections | {rates} |",
        "|---|---|" + "---|" * len(s.rates),
        *_rows(run),
        "",
        "What the service counted of its shadow runs (`distill_shadow_requests_total`, agreement with "
        '`source="shadow"`, and `distill_shadow_compute_seconds` p50 of the student\'s answers and of the '
        "teacher's runs on them). The load repeats one test image, so the agreement is that image's; on real "
        "traffic it is the figure the dashboard shows.",
        "",
        "| rate | round | shadow requests | agreement | compute p50, student / teacher (speedup) |",
        "|---|---|---|---|---|",
        *_counts(run),
        "",
        "With 1 connection the student's requests come one at a time and the teacher's shadow runs use the time "
        "between them and the other core; with 8 the student alone keeps the cores busy, so shadow runs take CPU "
        "from it (and are dropped once the queue is full): the throughput and CPU columns show that price.",
        "",
    ]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "shadow.md"
    path.write_text("\n".join(lines))
    return path
