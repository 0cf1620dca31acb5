"""The capacity report: `<out>/capacity.md` (the headline, each target's capacity, every step), `capacity.json`
(the run with each capacity) and `capacity.png` (p99 and CPU against the offered rate). `capacity_section` is
also the head of the speedup report."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from distill_bench.results.capacity import STOPS, Capacity, CapacityRun, Search, capacity, judge

PLOT = "capacity.png"


def _rate(value: Capacity) -> str:
    return f"{'>= ' if value.lower_bound else ''}{value.per_s:,.0f}"


def _where(run: CapacityRun) -> str:
    """Where the service ran: one pinned core makes its figures per core."""
    pins = run.pinning
    if pins.service is None:
        return f"the service (not pinned: any of the machine's {run.machine.cores} cores)"
    cores = len(pins.service)
    return "one core" if cores == 1 else f"{cores} cores"


def headline(run: CapacityRun) -> str:
    """The first two v2 targets (else the first two), compared: how many times fewer cores the first needs."""
    v2 = [s for s in run.searches if s.target.traffic == "v2"]
    pair = (v2 if len(v2) >= 2 else run.searches)[:2]
    slo = f"p99 <= {run.settings.slo_p99_ms:g} ms"
    if len(pair) < 2:
        return f"Capacity at {slo}: see the table (fewer than two targets to compare)."
    fast, slow = (capacity(s, run) for s in pair)
    ratio = fast.per_s / slow.per_s if slow.per_s > 0 else math.nan
    if not fast.per_s or not slow.per_s:
        nowhere = [s.target.name for s, c in zip(pair, (fast, slow), strict=True) if not c.per_s]
        verdict = f"no ratio: {' and '.join(nowhere)} met the objective at no rate tried"
    elif slow.lower_bound and fast.lower_bound:
        verdict = f"{ratio:.2f}x as measured, but both figures are lower bounds"
    elif slow.lower_bound:
        verdict = f"at most {ratio:.2f}x fewer cores ({pair[1].target.name}'s figure is a lower bound)"
    elif ratio >= 1:
        verdict = f"{'at least ' if fast.lower_bound else ''}{ratio:.2f}x fewer cores"
    else:
        verdict = f"{'at most ' if fast.lower_bound else ''}{1 / ratio:.2f}x more cores"
    return (
        f"**At {slo}, {_where(run)} serves {_rate(fast)} {pair[0].target.name} req/s vs {_rate(slow)} "
        f"{pair[1].target.name} req/s: {verdict}** ({pair[0].target.label} vs {pair[1].target.label})."
    )


def _fmt(value: float, spec: str) -> str:
    return "n/a" if math.isnan(value) else format(value, spec)


def _summary(run: CapacityRun) -> list[str]:
    lines = [
        "| target | capacity (req/s) | p99 there (ms) | service CPU per request (us) | service cores busy "
        "| generator cores | other processes (cores) | steps | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for search in run.searches:
        value, step = capacity(search, run), capacity(search, run).step
        note = value.why if value.lower_bound else STOPS[search.stopped]
        if step is None:
            lines.append(
                f"| {search.target.label} | {_rate(value)} | - | - | - | - | - | {len(search.steps)} | {note} |"
            )
            continue
        if judge(step, run).contended:
            note += f"; other processes used {step.other_cores:.2f} cores meanwhile"
        cpu = _fmt(step.service_cpu_us_per_request, ".0f")
        lines.append(
            f"| {search.target.label} | {_rate(value)} | {step.p99_ms:.0f} | {cpu} | {step.service_cores:.2f} "
            f"| {step.generator_cores:.2f} | {step.other_cores:.2f} | {len(search.steps)} | {note} |"
        )
    return lines


def setup(run: CapacityRun) -> str:
    s, pins = run.settings, run.pinning
    service = f"pinned to CPU {pins.service} (taskset)" if pins.service else "not pinned"
    generator = f"pinned to CPU {pins.generator}" if pins.generator else "not pinned"
    env = ", ".join(f"{k}={v}" for k, v in run.service_env.items())
    return (
        f"Open loop: {run.generator} users, each on a schedule of one request every users/rate seconds from a "
        f"random start, so the offered rate does not drop when the service slows (a user behind its schedule "
        f"sends at once); {s.pacing_slos:g} objectives between a user's requests. Each step: about {s.step_s} s "
        f"measured after every user started. A rate meets the objective when no request failed, p99 <= "
        f"{s.slo_p99_ms:g} ms and at least {s.held_fraction:.0%} of it was achieved; the capacity is the highest "
        f"offered rate that did. The search: a {s.probe_s} s closed-loop probe, 0.6x its throughput first, "
        f"x{s.growth:g} while steps pass, then halving the gap to {s.resolution:.0%}, at most {s.search_s:g} s per "
        f"target. Service: {env}, defaults otherwise, {service}. Load generator: {generator}, "
        f"{s.generator_processes} process(es) at first, at most {s.max_generator_processes}; it is the bottleneck "
        f"when it used {s.generator_busy:.0%} of its cores, or fell short of the rate while the service met the "
        "objective or had CPU to spare (then the step runs again with one more process, or the capacity is a lower "
        "bound). Latency is locust's, from when a request was sent: a user behind its schedule hides that wait, "
        "which is why a rate not held fails its step. CPU from /proc: the service's and the generator's processes "
        "apart, and the machine's CPUs whatever ran on them."
    )


def _contention(run: CapacityRun) -> list[str]:
    """A warning where other processes were busy during the steps the capacities come from."""
    busy = [
        c.step.other_cores for c in (capacity(s, run) for s in run.searches) if c.step and judge(c.step, run).contended
    ]
    if not busy:
        return []
    return [
        f"Other processes kept up to {max(busy):.2f} cores busy during the steps these capacities come from: they "
        "are what the service got on a shared machine, not what it would get alone.",
        "",
    ]


def capacity_section(run: CapacityRun, title_level: str = "##") -> list[str]:
    machine = run.machine
    return [
        f"{title_level} Capacity at p99 <= {run.settings.slo_p99_ms:g} ms (open loop)",
        "",
        headline(run),
        "",
        *_contention(run),
        *_summary(run),
        "",
        f"Machine: {machine.cpu} ({machine.cores} cores); run at {run.started}. {setup(run)}",
        "",
        f"![p99 and CPU against the offered rate]({PLOT})",
        "",
    ]


def _steps(search: Search, run: CapacityRun) -> list[str]:
    lines = [
        f"### {search.target.label}",
        "",
        f"Probe: {_fmt(search.probe_per_s, '.0f')} req/s closed loop; stopped: {STOPS[search.stopped]}; "
        f"{search.seconds:.0f} s.",
        "",
        "| offered (req/s) | achieved | users | processes | failed | p50 (ms) | p99 (ms) | service's own p99 (ms) "
        "| service cores | service CPU/request (us) | generator cores | other processes | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for step in search.steps:
        lines.append(
            f"| {step.offered_per_s:.0f} | {step.achieved_per_s:.0f} | {step.users} | {step.processes} "
            f"| {step.failures} | {step.p50_ms:.0f} | {step.p99_ms:.0f} | {_fmt(step.service_p99_ms, '.1f')} "
            f"| {step.service_cores:.2f} "
            f"| {_fmt(step.service_cpu_us_per_request, '.0f')} | {step.generator_cores:.2f} "
            f"| {step.other_cores:.2f} | {judge(step, run).why} |"
        )
    return [*lines, ""]


def plot_capacity(run: CapacityRun, path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for search in run.searches:
        steps = sorted(search.steps, key=lambda s: s.offered_per_s)
        rates = [s.offered_per_s for s in steps]
        (line,) = left.plot(rates, [s.p99_ms for s in steps], marker="o", label=search.target.label)
        failed = [s for s in steps if not judge(s, run).met]
        left.scatter([s.offered_per_s for s in failed], [s.p99_ms for s in failed], marker="x", s=80, color="black")
        right.plot(
            rates, [s.service_cores for s in steps], marker="o", color=line.get_color(), label=search.target.label
        )
        right.plot(rates, [s.generator_cores for s in steps], linestyle="--", color=line.get_color())
    left.axhline(run.settings.slo_p99_ms, color="red", linestyle=":", label="objective")
    left.set(
        xlabel="offered requests/s", ylabel="p99 (ms, log)", yscale="log", title="p99 against offered load (x: failed)"
    )
    right.set(xlabel="offered requests/s", ylabel="cores busy", title="CPU: service (solid), load generator (dashed)")
    for axis in (left, right):
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def capacity_json(run: CapacityRun) -> dict[str, Any]:
    figures = {s.target.slug: asdict(capacity(s, run)) for s in run.searches}
    return {"run": asdict(run), "capacity": figures, "headline": headline(run)}


def write_capacity_report(run: CapacityRun, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    plot_capacity(run, out / PLOT)
    (out / "capacity.json").write_text(json.dumps(capacity_json(run), indent=2) + "\n")
    lines = [
        "# Capacity report",
        "",
        *capacity_section(run),
        "## Every step",
        "",
        *[line for search in run.searches for line in _steps(search, run)],
        "Raw records: `capacity-raw/capacity.json` (and locust's statistics of each step beside it); "
        "`python -m distill_bench report --capacity capacity-raw/capacity.json` rewrites this page from them.",
        "",
    ]
    path = out / "capacity.md"
    path.write_text("\n".join(lines))
    return path
