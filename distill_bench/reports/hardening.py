"""The hardening report: `<out>/hardening.md` and `hardening.json`."""

from __future__ import annotations

from pathlib import Path

from distill_bench.results.hardening import HardeningResult, write_hardening_result


def _statuses(counts: dict[int, int]) -> str:
    return ", ".join(f"{count} x {status or 'no answer'}" for status, count in sorted(counts.items()))


def write_hardening_report(result: HardeningResult, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    write_hardening_result(result, out / "hardening.json")
    s, m = result.settings, result.machine
    up, live, slow, down = result.uploads, result.live, result.slow_bodies, result.shutdown
    side = f"{s.image_side}x{s.image_side} RGBA PNG ({up.png_bytes / 1024:.0f} KB)"
    lines = [
        "# Hardening report",
        "",
        f"Machine: {m.cpu}, {m.cores} cores, {m.platform}, Python {m.python}. Models `{s.models}`; every service "
        "ran with its default settings.",
        "",
        "| what | measured |",
        "|---|---|",
        f"| {s.uploads} concurrent uploads of a {side} to `/v1/classify` | peak RSS {up.rss_peak_mb:.0f} MiB (before: "
        f"{up.rss_before_mb:.0f} MiB); answers: {_statuses(up.statuses)} |",
        f"| `/v2/health/live` while {s.decode_clients} clients upload that image ({live.probes} probes, "
        f"{live.uploads_answered} uploads answered) | p50 {live.p50_ms:.1f} ms, p99 {live.p99_ms:.1f} ms, "
        f"max {live.max_ms:.1f} ms |",
        f"| valid v2 infer requests ({s.valid_clients} clients, {s.probe_s:g} s) while {slow.held_connections} "
        f"connections hold a half-sent body ({slow.reopened} reopened after the server closed them) | "
        f"{slow.valid_ok} of {slow.valid_requests} answered 200 "
        f"({slow.valid_ok / max(1, slow.valid_requests):.1%}) |",
        f"| SIGTERM to the parent of {s.workers} workers under {s.shutdown_clients} kept-alive clients, "
        f"{s.shutdown_rounds} rounds | dropped {down.dropped} (answered {down.answered}, refused after the "
        f"close {down.refused}) |",
        "",
        "A dropped request was sent on an accepted connection and never answered; a refused one was never sent "
        "(the listening socket was closed), so a client or load balancer can retry it elsewhere.",
        "",
    ]
    path = out / "hardening.md"
    path.write_text("\n".join(lines))
    return path
