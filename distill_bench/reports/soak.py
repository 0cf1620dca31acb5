"""The soak's report: `<out>/soak.md`, `soak.json` and `soak.png` (p99 and RSS over time)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt

from distill_bench.results.soak import MAX_RSS_GROWTH, TAGS, SoakResult, write_soak_result


def _plot(result: SoakResult, path: Path) -> None:
    p99, rss = result.p99_over_time, result.rss_samples
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot([t for t, _, _ in p99], [ms for _, ms, _ in p99], color="tab:red")
    top.set_ylabel("p99 latency, ms (last ~10 s)")
    top.grid(alpha=0.3)
    bottom.plot([t for t, _ in rss], [b / 2**20 for _, b in rss], color="tab:blue")
    bottom.axvline(result.warmup_s, color="grey", linestyle="--", label="end of warm-up (start)")
    bottom.set_ylabel("service RSS, MiB")
    bottom.set_xlabel("seconds")
    bottom.legend()
    bottom.grid(alpha=0.3)
    fig.suptitle("Soak: p99 latency and memory over time")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _mib(value: int) -> str:
    return f"{value / 2**20:.1f} MiB"


def _minute_rows(result: SoakResult) -> list[str]:
    rows = []
    for minute in range(math.ceil(result.settings.minutes)):
        window = [ms for t, ms, _ in result.p99_over_time if minute * 60 <= t < (minute + 1) * 60]
        if window:
            rows.append(f"| {minute + 1} | {max(window):.0f} | {sorted(window)[len(window) // 2]:.0f} |")
    return rows


def write_soak_report(result: SoakResult, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    write_soak_result(result, out / "soak.json")
    _plot(result, out / "soak.png")
    settings = result.settings
    verdict = "PASSED" if result.passed else "FAILED"
    lines = [
        "# Soak report",
        "",
        f"**{verdict}**: {result.requests} requests, {result.failures} failures (must be 0); service RSS "
        f"{_mib(result.rss_start_bytes)} after warm-up -> {_mib(result.rss_end_bytes)} at the end "
        f"({result.rss_growth:+.1%}; must stay under +{MAX_RSS_GROWTH:.0%}).",
        "",
        f"Setup: {settings.minutes} min of locust, {settings.users} users, no wait between requests, tags "
        f"{', '.join(TAGS)}; models `{settings.models}`; RSS sampled every {settings.sample_every_s} s "
        f"(before any load: {_mib(result.rss_before_load_bytes)}; warm-up: first {result.warmup_s:.0f} s).",
        "",
        "| requests | failures | requests/s | p50 ms | p99 ms |",
        "|---|---|---|---|---|",
        f"| {result.requests} | {result.failures} | {result.requests_per_s:.1f} | "
        f"{result.p50_ms:.0f} | {result.p99_ms:.0f} |",
        "",
        "p99 over time (locust's rolling window, per minute of the run):",
        "",
        "| minute | worst p99 ms | median p99 ms |",
        "|---|---|---|",
        *_minute_rows(result),
        "",
        "![p99 and RSS over time](soak.png)",
        "",
    ]
    path = out / "soak.md"
    path.write_text("\n".join(lines))
    return path
