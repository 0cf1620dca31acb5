"""The speedup report: from a recorded demo run (scrapes, locust CSVs, CPU times) to Markdown, JSON and plots.
It leads with the capacity at a latency objective (a recorded capacity run, when given), then the same-load
comparison, then the model's compute alone.

A pure function of the recorded files, so the numbers can be checked on saved inputs and regenerated at will:

    <raw>/run.json                 the run: machine, load settings, phases (model, role, CPU and wall seconds), cards
    <raw>/<phase>_before.prom    the service's /metrics before the phase's load
    <raw>/<phase>_after.prom     ... and after it
    <raw>/<phase>.json           locust's final statistics for the phase (its --json-file)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import matplotlib.ticker

from distill_bench.drivers.locust import read_stats
from distill_bench.reports.capacity import capacity_json, capacity_section, write_capacity_report
from distill_bench.results.capacity import CapacityRun
from distill_bench.results.demo import CardSummary, DemoRun, Phase, read_demo_run
from distill_bench.scrape import buckets, delta, parse_samples, quantile, total

COMPUTE = "distill_inference_duration_seconds"


@dataclass(frozen=True)
class PhaseResult:
    """One model under the same load; every number says where it came from in `sources` of the report."""

    phase: str
    model: str
    role: str
    offline_accuracy: float  # card: ONNX accuracy on the whole test set at export
    online_accuracy: float  # service counters: correct / labeled during the phase
    labeled: int
    compute_p50_ms: float  # service histogram of onnxruntime runs, during the phase
    compute_p99_ms: float
    e2e_p50_ms: float  # locust, end to end
    e2e_p95_ms: float
    e2e_p99_ms: float
    requests_per_s: float
    requests: int
    failures: int
    cpu_ms_per_1000: float  # service process CPU time (/proc) per 1000 answered requests
    compute_cdf: list[tuple[float, float]]  # (seconds, fraction) from histogram buckets
    e2e_cdf: list[tuple[float, float]]  # (ms, fraction) from locust's response-time histogram


def analyse_phase(raw: Path, phase: Phase, card: CardSummary) -> PhaseResult:
    name, model = phase.name, phase.model
    seen = delta(
        parse_samples((raw / f"{name}_after.prom").read_text()),
        parse_samples((raw / f"{name}_before.prom").read_text()),
    )
    compute = buckets(seen, COMPUTE, model=model)
    runs = compute[-1][1] if compute else 0.0
    labeled = total(seen, "distill_predictions_labeled_total", model=model)
    correct = total(seen, "distill_predictions_correct_total", model=model)
    stats = read_stats(raw / f"{name}.json")
    answered = stats.requests - stats.failures
    return PhaseResult(
        phase=name,
        model=model,
        role=phase.role,
        offline_accuracy=card.test_accuracy,
        online_accuracy=correct / labeled if labeled else math.nan,
        labeled=int(labeled),
        compute_p50_ms=quantile(0.5, compute) * 1e3,
        compute_p99_ms=quantile(0.99, compute) * 1e3,
        e2e_p50_ms=stats.p(0.5),
        e2e_p95_ms=stats.p(0.95),
        e2e_p99_ms=stats.p(0.99),
        requests_per_s=stats.requests_per_s,
        requests=stats.requests,
        failures=stats.failures,
        cpu_ms_per_1000=phase.cpu_seconds * 1e3 / answered * 1000 if answered else math.nan,
        compute_cdf=_trimmed_cdf(compute, runs),
        e2e_cdf=stats.cdf,
    )


def _trimmed_cdf(cumulative: list[tuple[float, float]], runs: float) -> list[tuple[float, float]]:
    """(seconds, fraction) steps of a histogram, from its first non-empty bucket to the first full one."""
    points = [(bound, count / runs) for bound, count in cumulative if runs and not math.isinf(bound)]
    first = next((i for i, (_, f) in enumerate(points) if f > 0), 0)
    last = next((i for i, (_, f) in enumerate(points) if f >= 1.0), len(points) - 1)
    return points[max(first - 1, 0) : last + 1]


def _ratio(teacher: float, student: float) -> float:
    return teacher / student if student > 0 else math.nan


def speedups(teacher: PhaseResult, student: PhaseResult) -> dict[str, float]:
    """Teacher over student: above 1 means the student is faster (or cheaper)."""
    return {
        "compute_p50": _ratio(teacher.compute_p50_ms, student.compute_p50_ms),
        "compute_p99": _ratio(teacher.compute_p99_ms, student.compute_p99_ms),
        "e2e_p50": _ratio(teacher.e2e_p50_ms, student.e2e_p50_ms),
        "e2e_p99": _ratio(teacher.e2e_p99_ms, student.e2e_p99_ms),
        "throughput": _ratio(student.requests_per_s, teacher.requests_per_s),
        "cpu_per_prediction": _ratio(teacher.cpu_ms_per_1000, student.cpu_ms_per_1000),
    }


def _plot_cdfs(results: list[PhaseResult], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for r in results:
        if r.compute_cdf:
            xs, ys = zip(*((s * 1e3, f) for s, f in r.compute_cdf), strict=True)
            left.step(xs, ys, where="post", label=r.model)
        xs, ys = zip(*r.e2e_cdf, strict=True)
        right.step(xs, ys, where="post", label=r.model)
    left.set(
        xscale="log",
        xlabel="onnxruntime run (ms, log)",
        ylabel="fraction of runs",
        title="Model compute (service histogram buckets)",
    )
    right.set(
        xscale="log",
        xlabel="end-to-end latency (ms, log)",
        ylabel="fraction of requests",
        title="End to end (locust, ms rounded by locust)",
    )
    for axis in (left, right):
        axis.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_accuracy_latency(results: list[PhaseResult], path: Path) -> None:
    fig, axis = plt.subplots(figsize=(6, 4.5))
    for r in results:
        axis.scatter(r.compute_p50_ms, r.offline_accuracy * 100, s=80, label=f"{r.model} (offline, card)")
        if not math.isnan(r.online_accuracy):
            axis.scatter(
                r.compute_p50_ms,
                r.online_accuracy * 100,
                marker="x",
                s=80,
                label=f"{r.model} (online, {r.labeled} labeled requests)",
            )
    axis.set(
        xscale="log",
        xlabel="model compute p50 (ms, log; service histogram)",
        ylabel="accuracy (%)",
        title="Accuracy vs latency",
    )
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _same_load(run: DemoRun, results: list[PhaseResult], ratios: dict[str, float]) -> list[str]:
    lines = [
        f"## The same closed-loop load: {run.users} locust users, each sending as soon as answered",
        "",
        "Both models get the same users in turn, so the rate is set by the clients (a closed loop) and the users "
        "share the machine's cores with the service: this compares the two under identical load, not what either "
        "can serve at a latency objective (the capacity above says that).",
        "",
        "| model | e2e p50 (ms) | e2e p95 (ms) | e2e p99 (ms) | req/s | requests | failures "
        "| CPU ms / 1000 predictions |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.model} | {r.e2e_p50_ms:.1f} | {r.e2e_p95_ms:.1f} | {r.e2e_p99_ms:.1f} | {r.requests_per_s:.1f} "
            f"| {r.requests} | {r.failures} | {_fmt(r.cpu_ms_per_1000, 1)} |"
        )
    same = ("e2e_p50", "e2e_p99", "throughput", "cpu_per_prediction")
    lines += ["", "Teacher / student (above 1: the student wins):", ""]
    lines += [f"- {key.replace('_', ' ')}: **{_fmt(ratios[key], 2)}x**" for key in same]
    return [*lines, "", "![latency CDFs](speedup_latency_cdf.png)", ""]


def _compute_only(results: list[PhaseResult], ratios: dict[str, float]) -> list[str]:
    lines = [
        "## Compute only: the onnxruntime runs",
        "",
        "The model alone, as the service timed each onnxruntime run during the same-load phases (no HTTP, no "
        "parsing): what distillation itself bought.",
        "",
        "| model | compute p50 (ms) | compute p99 (ms) |",
        "|---|---|---|",
        *[f"| {r.model} | {_fmt(r.compute_p50_ms)} | {_fmt(r.compute_p99_ms)} |" for r in results],
        "",
    ]
    lines += [f"- {key.replace('_', ' ')}: **{_fmt(ratios[key], 2)}x**" for key in ("compute_p50", "compute_p99")]
    return [*lines, "", "![accuracy vs latency](speedup_accuracy_latency.png)", ""]


def _accuracy(results: list[PhaseResult]) -> list[str]:
    lines = [
        "## Accuracy",
        "",
        "| model | role | offline test accuracy (card) | online accuracy (service counters) | labeled requests |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        online = _fmt(r.online_accuracy * 100, 2) + " %"
        lines.append(f"| {r.model} | {r.role} | {r.offline_accuracy * 100:.2f} % | {online} | {r.labeled} |")
    return [*lines, ""]


def _capacity(capacity: CapacityRun | None) -> list[str]:
    if capacity is None:
        return [
            "## Capacity at a latency objective",
            "",
            "Not measured in this run: `python -m distill_bench capacity` measures it (`make demo` does).",
            "",
        ]
    return [*capacity_section(capacity), "Every step of the search: [capacity.md](capacity.md).", ""]


def _markdown(run: DemoRun, results: list[PhaseResult], ratios: dict[str, float], capacity: CapacityRun | None) -> str:
    machine = run.machine
    lines = [
        "# Speedup report: student vs teacher",
        "",
        f"Machine: {machine.cpu} ({machine.cores} cores), {machine.platform}. Same-load run at {run.started}.",
        f"Load: locust `{run.locustfile}`, {run.users} users, {run.duration_s} s per model, one model at a "
        "time against one service process; each request is one real test-set image (3 JSON pixel arrays : 1 PNG "
        "upload) with its true label, drawn from 512 test images sampled once (online accuracy is over that sample).",
        "",
        *_capacity(capacity),
        *_same_load(run, results, ratios),
        *_compute_only(results, ratios),
        *_accuracy(results),
        "## Where each figure comes from",
        "",
        "- Capacity: the highest offered rate of an open-loop search whose step met the objective; p99 and rates "
        "from locust's statistics of that step, CPU from /proc over its measured seconds "
        "(`capacity-raw/capacity.json`, every step in `capacity.md`).",
        "- Offline accuracy: `versions.<v>.test_accuracy` of the model card, the ONNX model on the whole test set.",
        "- Online accuracy: delta of `distill_predictions_correct_total` / `distill_predictions_labeled_total` "
        "between scrapes of `/metrics` before and after the model's phase.",
        "- Compute p50/p99 and its CDF: delta of the `distill_inference_duration_seconds` histogram over the phase, "
        "interpolated inside buckets as PromQL's `histogram_quantile` does (one observation per onnxruntime run).",
        "- End-to-end latency and throughput: locust's final statistics (client side, ms; locust rounds its "
        "percentiles, so sub-millisecond differences are not visible there).",
        "- CPU per 1000 predictions: user+system CPU time of the service process from `/proc/<pid>/stat` over the "
        "phase, divided by the requests answered (includes HTTP and parsing: the whole serving cost).",
        f"- Raw inputs: `{run.raw_dir}`; `python -m distill_bench report` regenerates this page from them.",
    ]
    return "\n".join(lines) + "\n"


def write_report(raw: Path, out: Path, capacity: CapacityRun | None = None) -> dict[str, Any]:
    """Read the recorded run in `raw` (and the capacity run, when given); write `out/speedup.md`,
    `out/speedup.json` and PNG plots; return the JSON."""
    run = read_demo_run(raw)
    results = [analyse_phase(raw, phase, run.cards[phase.model]) for phase in run.phases]
    by_role = {r.role: r for r in results}
    ratios = speedups(by_role["teacher"], by_role["student"])
    _plot_cdfs(results, out / "speedup_latency_cdf.png")
    _plot_accuracy_latency(results, out / "speedup_accuracy_latency.png")
    if capacity is not None:
        write_capacity_report(capacity, out)
    (out / "speedup.md").write_text(_markdown(run, results, ratios, capacity))
    summary = {"run": asdict(run), "results": [asdict(r) for r in results], "speedup": ratios}
    if capacity is not None:
        summary["capacity"] = capacity_json(capacity)
    (out / "speedup.json").write_text(json.dumps(summary, indent=2, allow_nan=True) + "\n")
    return summary
