"""The benchmark's report: ratios against the targets of the performance issue, a table of every run, plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _run(data: dict[str, Any], target: str, connections: int) -> dict[str, Any]:
    entry = next(t for t in data["targets"] if t["name"] == target)
    return dict(next(r for r in entry["runs"] if r["connections"] == connections))


def _maybe_run(data: dict[str, Any], target: str, connections: int) -> dict[str, Any] | None:
    names = {t["name"] for t in data["targets"]}
    return _run(data, target, connections) if target in names else None


def _rps(run: dict[str, Any]) -> float:
    return float(run["requests"]) / float(run["duration_s"])


def _teacher_runs_32(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The teacher's JSON runs at 32 connections, batching on and off."""
    return _run(data, "teacher json batching on", 32), _run(data, "teacher json batching off", 32)


def ratios(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue as (what, measured ratio, goal, met); every ratio is from this one run."""
    floor = _rps(_run(data, "floor", 32))
    student_seq = _run(data, "student json batching on", 1)["latency_us"]["50.0"]
    teacher_seq = _run(data, "teacher json batching on", 1)["latency_us"]["50.0"]
    on, off = _teacher_runs_32(data)
    rows = [
        (
            "student JSON, 32 connections: throughput / floor",
            _rps(_run(data, "student json batching on", 32)) / floor,
            0.30,
        ),
        (
            "student binary, 32 connections: throughput / floor",
            _rps(_run(data, "student binary batching on", 32)) / floor,
            0.45,
        ),
        *(
            (f"student {body}, 32 connections, 2 workers: throughput / floor", _rps(run) / floor, goal)
            for body, goal in (("JSON", 0.30), ("binary", 0.45))
            if (run := _maybe_run(data, f"student {body.lower()} 2 workers", 32)) is not None
        ),
        ("teacher p50 / student p50, 1 connection, end to end", teacher_seq / student_seq, 3.0),
        ("teacher, 32 connections: throughput batching on / off", _rps(on) / _rps(off), 2.0),
    ]
    result = [{"what": w, "ratio": r, "goal": f">= {g}", "met": r >= g} for w, r, g in rows]
    p99 = on["latency_us"]["99.0"] / off["latency_us"]["99.0"]
    result.append(
        {"what": "teacher, 32 connections: p99 batching on / off", "ratio": p99, "goal": "<= 2", "met": p99 <= 2.0}
    )
    return result


def _cpu_us_per_request(data: dict[str, Any], target: str) -> float:
    entry = next(t for t in data["targets"] if t["name"] == target)
    answered = sum(r["requests"] for r in entry["runs"])
    return float(entry["service_cpu_s"]) / answered * 1e6 if answered else math.nan


def _workers_table(data: dict[str, Any], workers: int) -> list[str]:
    lines = [
        f"| body | connections | 1 worker req/s | 1 worker p99 (us) | {workers} workers req/s "
        f"| {workers} workers p99 (us) | throughput {workers} / 1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for encoding in ("json", "binary"):
        one = next(t for t in data["targets"] if t["name"] == f"student {encoding} batching on")
        for run in one["runs"]:
            many = _run(data, f"student {encoding} {workers} workers", run["connections"])
            lines.append(
                f"| {encoding} | {run['connections']} | {_rps(run):.0f} | {run['latency_us']['99.0']:.0f} "
                f"| {_rps(many):.0f} | {many['latency_us']['99.0']:.0f} | {_rps(many) / _rps(run):.2f} |"
            )
    return lines


def _workers(data: dict[str, Any]) -> list[str]:
    """The student with one worker process (batching on) against several, at every connection count."""
    workers = data.get("workers")
    if workers is None:  # a run recorded before the multi-worker target
        return []
    lines = [
        f"## One worker or {workers} (the student, batching on)",
        "",
        f"`DISTILL_WORKERS={workers}` runs {workers} uvicorn worker processes on one port; each loads its own "
        "models and `/metrics` sums them all. The two servers ran minutes apart in this one run, sharing the "
        "cores with wrk (and whatever else runs on the machine), so small differences are noise.",
        "",
        *_workers_table(data, workers),
    ]
    cpu = {
        encoding: [
            _cpu_us_per_request(data, f"student {encoding} {name}") for name in ("batching on", f"{workers} workers")
        ]
        for encoding in ("json", "binary")
    }
    rss = data["rss_mb_workers"]
    per_worker = ", ".join(f"{mb:.0f}" for mb in rss["workers"])
    lines += [
        "",
        "Service CPU per request (all its processes, over every connection count): "
        + "; ".join(f"{e} {one:.0f} us with 1 worker, {many:.0f} us with {workers}" for e, (one, many) in cpu.items())
        + ". Several workers make no request cheaper; they let the service use more than the one core a "
        "single Python event loop can, so they raise throughput only where a core would otherwise be idle "
        "(here wrk, the server and anything else running share the machine's cores).",
        "",
        f"RSS with {workers} workers after their load: each worker {per_worker} MB (its own models), the parent "
        f"{rss['parent']:.0f} MB; one worker alone: {data['rss_mb_after_load']['on']:.0f} MB.",
        "",
    ]
    return lines


def _handler(data: dict[str, Any], target: str, connections: int) -> dict[str, float] | None:
    entry = next(t for t in data["targets"] if t["name"] == target)
    means: dict[str, float] | None = entry.get("handler_us", {}).get(str(connections))
    return means


def time_budget(data: dict[str, Any]) -> list[str]:
    """Where a lone request's time goes (1 connection, batching on): the HTTP round trip that the floor pays
    too, the service's own code, and the model. From means: wrk's end to end, the service's metrics inside."""
    if _handler(data, "student json batching on", 1) is None:  # a run recorded before per-run metrics
        return []
    floor = float(_run(data, "floor", 1)["latency_mean_us"])
    lines = [
        "## Where a lone request's time goes (1 connection)",
        "",
        "Means in microseconds. End to end is wrk's; the floor's is the HTTP round trip with the same body and a "
        "constant answer, which every service on this machine pays. Inside the service, from its metrics: the "
        "handler (parse to response), the batcher's queue and the model's onnxruntime run; our code is the "
        "handler less the other two. Outside the handler is what uvicorn, the kernel and wrk add.",
        "",
        "| target | end to end p50 | end to end | floor | outside the handler | handler | model run | queue "
        "| our code |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    compute: dict[str, float] = {}
    for role in ("student", "teacher"):
        for encoding in ("json", "binary"):
            target = f"{role} {encoding} batching on"
            run, inside = _run(data, target, 1), _handler(data, target, 1)
            assert inside is not None
            e2e = float(run["latency_mean_us"])
            outside = e2e - inside["handler"]
            ours = inside["handler"] - inside["compute"] - inside["queue"]
            compute.setdefault(role, inside["compute"])
            lines.append(
                f"| {target} | {run['latency_us']['50.0']:.0f} | {e2e:.0f} | {floor:.0f} | {outside:.0f} "
                f"| {inside['handler']:.0f} | {inside['compute']:.0f} | {inside['queue']:.0f} | {ours:.0f} |"
            )
    best = (floor + compute["teacher"]) / (floor + compute["student"])
    lines += [
        "",
        f"A service whose own code cost nothing would still pay the floor's round trip on every request: its "
        f"teacher/student ratio at 1 connection would be (floor + teacher run) / (floor + student run) = "
        f"({floor:.0f} + {compute['teacher']:.0f}) / ({floor:.0f} + {compute['student']:.0f}) = **{best:.2f}**, "
        "with the model runs as the service measured them (caches cold between requests).",
        "",
    ]
    return lines


def overload(data: dict[str, Any]) -> list[str]:
    """The student far past capacity: how many were refused, and whether the rest were answered in turn."""
    entry = next((t for t in data["targets"] if t["name"] == "student json overload"), None)
    if entry is None:  # a run recorded before the overload target
        return []
    lines = [
        "## Far past capacity (the student, JSON)",
        "",
        "A closed loop of many connections: each request waits about connections / throughput (the fair wait) if "
        "requests are answered in turn. Past `max_inflight_requests` (default 512) or a full batcher queue the "
        "answer is 503 with `Retry-After`; wrk counts those among the responses, and its latencies include them.",
        "",
        "| connections | req/s | p50 (ms) | p99 (ms) | fair wait (ms) | p99 / fair wait | refused (non-2xx) "
        "| socket errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in entry["runs"]:
        fair_ms = run["connections"] / _rps(run) * 1e3
        p50, p99 = run["latency_us"]["50.0"] / 1e3, run["latency_us"]["99.0"] / 1e3
        lines.append(
            f"| {run['connections']} | {_rps(run):.0f} | {p50:.1f} | {p99:.1f} | {fair_ms:.1f} | {p99 / fair_ms:.2f} "
            f"| {run['non_2xx']} | {run['socket_errors']} |"
        )
    return [*lines, ""]


def _losses(data: dict[str, Any]) -> list[str]:
    lines = [
        "| target | wrk responses (all connections) | socket errors | non-2xx | service counted |",
        "|---|---|---|---|---|",
    ]
    for t in data["targets"]:
        answered = sum(r["requests"] for r in t["runs"])
        errors = sum(r["socket_errors"] for r in t["runs"])
        non_2xx = sum(r["non_2xx"] for r in t["runs"])
        counted = "-" if t["service_counted"] is None else f"{t['service_counted']:.0f}"
        lines.append(f"| {t['name']} | {answered} | {errors} | {non_2xx} | {counted} |")
    return lines


def _plot(data: dict[str, Any], out: Path) -> None:
    fig, axis = plt.subplots(figsize=(8, 5))
    axis.set_prop_cycle(color=[plt.get_cmap("tab20")(i) for i in range(20)])  # more targets than 10 default colours
    for t in data["targets"]:
        xs = [r["connections"] for r in t["runs"]]
        axis.plot(xs, [_rps(r) for r in t["runs"]], marker="o", label=t["name"])
    axis.set(xscale="log", yscale="log", xlabel="connections (wrk)", ylabel="requests/s", title="Throughput")
    axis.set_xticks(
        [r["connections"] for r in data["targets"][0]["runs"]],
        [str(r["connections"]) for r in data["targets"][0]["runs"]],
    )
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "bench_throughput.png", dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, connections in zip(axes, (1, 32), strict=True):
        for t in data["targets"]:
            if "binary" in t["name"]:
                continue
            run = next((r for r in t["runs"] if r["connections"] == connections), None)
            if run:
                points = sorted((float(v) / 1e3, float(p) / 100) for p, v in run["latency_us"].items())
                axis.plot(*zip(*points, strict=True), marker=".", label=t["name"])
        axis.set(
            xscale="log",
            xlabel="latency (ms, log)",
            ylabel="fraction of requests",
            title=f"Latency CDF, {connections} connection(s), JSON",
        )
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "bench_latency_cdf.png", dpi=110)
    plt.close(fig)


def write_bench_report(data: dict[str, Any], out: Path) -> None:
    checks = ratios(data)
    data["ratios"] = checks
    (out / "bench.json").write_text(json.dumps(data, indent=2) + "\n")
    _plot(data, out)
    machine = data["machine"]
    lines = [
        "# Serving benchmark",
        "",
        f"Machine: {machine['cpu']} ({machine['cores']} cores), {machine['platform']}; run at {data['started']}. "
        f"Load generator: wrk (1 thread at 1 connection, 2 threads above), {data['duration_s']} s per point, "
        "one real test image per request, the same body for the floor and the student's JSON target. "
        "wrk and the server share the machine's cores.",
        "",
        "## Against the goals (ratios from this run)",
        "",
        "| what | measured | goal | met |",
        "|---|---|---|---|",
        *[f"| {c['what']} | {c['ratio']:.3f} | {c['goal']} | {'yes' if c['met'] else '**no**'} |" for c in checks],
        "",
        "## Every run",
        "",
        "| target | connections | req/s | p50 (us) | p99 (us) |",
        "|---|---|---|---|---|",
    ]
    for t in data["targets"]:
        for r in t["runs"]:
            lat = r["latency_us"]
            lines.append(
                f"| {t['name']} | {r['connections']} | {_rps(r):.0f} | {lat['50.0']:.0f} | {lat['99.0']:.0f} |"
            )
    lines += [
        "",
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
    gains: dict[str, float] = {}
    for role, limit in data["in_process"].items():
        single, full = limit.get("us_per_row_batch_1", math.nan), limit.get("us_per_row_full_batch", math.nan)
        gains[role] = single / full
        lines.append(
            f"| {role} | {limit['runs_per_s_one_core']:.0f} | {limit['p50_us']:.1f} | {limit['p99_us']:.1f} | "
            f"{single:.1f} | {full:.1f} | {gains[role]:.2f}x |"
        )
    on, off = _teacher_runs_32(data)
    lines += [
        "",
        f"The teacher gains {gains['teacher']:.2f}x from batching in process and {_rps(on) / _rps(off):.2f}x in the "
        "service (32 connections). Batching makes no row's compute cheaper than the full batch's time per row; "
        "past the model's own gain it can only save per-run overhead (one thread hand-off per batch instead of per "
        "request).",
    ]
    rss = ", ".join(f"batching {k}: {v:.0f} MB" for k, v in data["rss_mb_after_load"].items())
    lines += [
        "",
        f"Service RSS after its load: {rss} (goal: under 250 MB).",
        "",
        *time_budget(data),
        *overload(data),
        *_workers(data),
        "## Nothing lost",
        "",
        "wrk counts the responses it received; socket errors are requests that got none. The service counts "
        "every inference request it answered (`distill_inference_requests_total`, plus `distill_requests_shed_total` "
        "for those refused before reaching a model); it may count up to one "
        "request per connection more than wrk, answered after wrk stopped listening.",
        "",
        *_losses(data),
        "",
        "![throughput](bench_throughput.png)",
        "",
        "![latency CDF](bench_latency_cdf.png)",
        "",
    ]
    (out / "bench.md").write_text("\n".join(lines))
    bad = [c["what"] for c in checks if not c["met"]]
    if bad or math.isnan(sum(c["ratio"] for c in checks)):
        print("goals not met: " + "; ".join(bad))
