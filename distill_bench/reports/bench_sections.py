"""The benchmark report's sections past its headline tables, each a list of Markdown lines: where a lone
request's time goes, the student far past capacity, one worker or several, and nothing lost."""

from __future__ import annotations

from collections.abc import Sequence

from distill_bench.results.bench import BODIES, FLOOR, ROLES, BenchRun, Target, TargetResult, find, get
from modelrepo.card import Role


def time_budget(results: Sequence[TargetResult]) -> list[str]:
    """Where a lone request's time goes (1 connection, batching on): the HTTP round trip that the floor pays
    too, the service's own code, and the model. From means: wrk's end to end, the service's metrics inside."""
    if get(results, Target("service", "student", "json")).handler_us.get(1) is None:  # recorded without metrics
        return []
    floor = get(results, FLOOR).at(1).latency_mean_us
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
    compute: dict[Role, float] = {}
    for target in (Target("service", role, body) for role in ROLES for body in BODIES):
        result = get(results, target)
        run, inside = result.at(1), result.handler_us[1]
        outside = run.latency_mean_us - inside["handler"]
        ours = inside["handler"] - inside["compute"] - inside["queue"]
        compute.setdefault(target.role, inside["compute"])
        lines.append(
            f"| {target.label} | {run.latency_us[50.0]:.0f} | {run.latency_mean_us:.0f} | {floor:.0f} "
            f"| {outside:.0f} | {inside['handler']:.0f} | {inside['compute']:.0f} | {inside['queue']:.0f} "
            f"| {ours:.0f} |"
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


def overload(results: Sequence[TargetResult]) -> list[str]:
    """The student far past capacity: how many were refused, and whether the rest were answered in turn."""
    far = find(results, Target("service", "student", "json", load="overload"))
    if far is None:  # the open-file limit allowed no overload runs
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
    for run in far.runs:
        fair_ms = run.connections / run.requests_per_s * 1e3
        p50, p99 = run.latency_us[50.0] / 1e3, run.latency_us[99.0] / 1e3
        lines.append(
            f"| {run.connections} | {run.requests_per_s:.0f} | {p50:.1f} | {p99:.1f} | {fair_ms:.1f} "
            f"| {p99 / fair_ms:.2f} | {run.non_2xx} | {run.socket_errors} |"
        )
    return [*lines, ""]


def _workers_table(run: BenchRun) -> list[str]:
    several = run.workers
    lines = [
        f"| body | connections | 1 worker req/s | 1 worker p99 (us) | {several} workers req/s "
        f"| {several} workers p99 (us) | throughput {several} / 1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for body in BODIES:
        many = run.get(Target("service", "student", body, workers=several))
        for one in run.get(Target("service", "student", body)).runs:
            other = many.at(one.connections)
            lines.append(
                f"| {body} | {one.connections} | {one.requests_per_s:.0f} | {one.latency_us[99.0]:.0f} "
                f"| {other.requests_per_s:.0f} | {other.latency_us[99.0]:.0f} "
                f"| {other.requests_per_s / one.requests_per_s:.2f} |"
            )
    return lines


def workers(run: BenchRun) -> list[str]:
    """The student with one worker process (batching on) against several, at every connection count."""
    several = run.workers
    cpu = {
        body: [run.get(Target("service", "student", body, workers=n)).cpu_us_per_request for n in (1, several)]
        for body in BODIES
    }
    per_worker = ", ".join(f"{mb:.0f}" for mb in run.rss_mb_workers.workers)
    return [
        f"## One worker or {several} (the student, batching on)",
        "",
        f"`DISTILL_WORKERS={several}` runs {several} uvicorn worker processes on one port; each loads its own "
        "models and `/metrics` sums them all. The two servers ran minutes apart in this one run, sharing the "
        "cores with wrk (and whatever else runs on the machine), so small differences are noise.",
        "",
        *_workers_table(run),
        "",
        "Service CPU per request (all its processes, over every connection count): "
        + "; ".join(f"{b} {one:.0f} us with 1 worker, {many:.0f} us with {several}" for b, (one, many) in cpu.items())
        + ". Several workers make no request cheaper; they let the service use more than the one core a "
        "single Python event loop can, so they raise throughput only where a core would otherwise be idle "
        "(here wrk, the server and anything else running share the machine's cores).",
        "",
        f"RSS with {several} workers after their load: each worker {per_worker} MB (its own models), the parent "
        f"{run.rss_mb_workers.parent:.0f} MB; one worker alone: {run.rss_mb_after_load.on:.0f} MB.",
        "",
    ]


def losses(results: Sequence[TargetResult]) -> list[str]:
    lines = [
        "| target | wrk responses (all connections) | socket errors | non-2xx | service counted |",
        "|---|---|---|---|---|",
    ]
    for t in results:
        errors = sum(r.socket_errors for r in t.runs)
        non_2xx = sum(r.non_2xx for r in t.runs)
        counted = "-" if t.service_counted is None else f"{t.service_counted:.0f}"
        lines.append(f"| {t.target.label} | {t.requests} | {errors} | {non_2xx} | {counted} |")
    return lines
