"""The benchmark's report, `<out>/bench.md`: its goals, a table of every run, the model's own limits, the
sections of `bench_sections` and two plots; `<out>/bench.json` is the run with the goals' ratios added."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

from distill_bench.reports.bench_goals import Goal, goals, teacher_runs_32
from distill_bench.reports.bench_plots import plot_latency_cdfs, plot_throughput
from distill_bench.reports.bench_sections import losses, overload, time_budget, workers
from distill_bench.results.bench import BenchRun, bench_json


def _goals_table(checks: list[Goal]) -> list[str]:
    return [
        "| what | measured | goal | met |",
        "|---|---|---|---|",
        *[f"| {c.what} | {c.ratio:.3f} | {c.goal} | {'yes' if c.met else '**no**'} |" for c in checks],
    ]


def _every_run(run: BenchRun) -> list[str]:
    lines = ["| target | connections | req/s | p50 (us) | p99 (us) |", "|---|---|---|---|---|"]
    for t in run.targets:
        for r in t.runs:
            lines.append(
                f"| {t.target.label} | {r.connections} | {r.requests_per_s:.0f} | {r.latency_us[50.0]:.0f} "
                f"| {r.latency_us[99.0]:.0f} |"
            )
    return lines


def _in_process(run: BenchRun) -> list[str]:
    lines = [
        "## In-process onnxruntime: the model's own limits",
        "",
        "Batch 1 on one thread: the most the model itself allows on one core. Then the time per row at batch 1 "
        "and at a full batch, with as many threads as cores (the service's default for a model in a worker "
        "thread; one on the event loop gets one thread): the ratio is the most that batching can gain for this "
        "model even with the cores to itself.",
        "",
        "| model | runs/s on one core | p50 (us) | p99 (us) | us/row, batch 1 | us/row, full batch | batching gain |",
        "|---|---|---|---|---|---|---|",
    ]
    for role, limit in run.in_process.items():
        lines.append(
            f"| {role} | {limit.runs_per_s_one_core:.0f} | {limit.p50_us:.1f} | {limit.p99_us:.1f} | "
            f"{limit.us_per_row_batch_1:.1f} | {limit.us_per_row_full_batch:.1f} | {limit.batching_gain:.2f}x |"
        )
    on, off = teacher_runs_32(run)
    return [
        *lines,
        "",
        f"The teacher gains {run.in_process['teacher'].batching_gain:.2f}x from batching in process and "
        f"{on.requests_per_s / off.requests_per_s:.2f}x in the service (32 connections). Batching makes no row's "
        "compute cheaper than the full batch's time per row; past the model's own gain it can only save per-run "
        "overhead (one thread hand-off per batch instead of per request).",
    ]


def write_bench_report(run: BenchRun, out: Path) -> None:
    checks = goals(run)
    (out / "bench.json").write_text(
        json.dumps({**bench_json(run), "ratios": [asdict(c) for c in checks]}, indent=2) + "\n"
    )
    plot_throughput(run.targets, out / "bench_throughput.png")
    plot_latency_cdfs(run.targets, out / "bench_latency_cdf.png")
    machine, rss = run.machine, run.rss_mb_after_load
    lines = [
        "# Serving benchmark",
        "",
        f"Machine: {machine.cpu} ({machine.cores} cores), {machine.platform}; run at {run.started}. "
        f"Load generator: wrk (1 thread at 1 connection, 2 threads above), {run.duration_s} s per point, "
        "one real test image per request, the same body for the floor and the student's JSON target. "
        "wrk and the server share the machine's cores.",
        "",
        "## Against the goals (ratios from this run)",
        "",
        *_goals_table(checks),
        "",
        "## Every run",
        "",
        *_every_run(run),
        "",
        *_in_process(run),
        "",
        f"Service RSS after its load: batching on: {rss.on:.0f} MB, batching off: {rss.off:.0f} MB "
        "(goal: under 250 MB).",
        "",
        *time_budget(run.targets),
        *overload(run.targets),
        *workers(run),
        "## Nothing lost",
        "",
        "wrk counts the responses it received; socket errors are requests that got none. The service counts "
        "every inference request it answered (`distill_inference_requests_total`, plus `distill_requests_shed_total` "
        "for those refused before reaching a model); it may count up to one "
        "request per connection more than wrk, answered after wrk stopped listening.",
        "",
        *losses(run.targets),
        "",
        "![throughput](bench_throughput.png)",
        "",
        "![latency CDF](bench_latency_cdf.png)",
        "",
    ]
    (out / "bench.md").write_text("\n".join(lines))
    bad = [c.what for c in checks if not c.met]
    if bad or math.isnan(sum(c.ratio for c in checks)):
        print("goals not met: " + "; ".join(bad))
