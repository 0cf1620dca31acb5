"""python -m distill_bench demo | capacity | bench | samples | soak | hardening | shadow | report"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from distill_bench.drivers.locust import LoadSettings
from distill_bench.drivers.wrk import wrk_available
from distill_bench.reports.bench import write_bench_report
from distill_bench.reports.capacity import write_capacity_report
from distill_bench.reports.hardening import write_hardening_report
from distill_bench.reports.shadow import write_shadow_report
from distill_bench.reports.soak import write_soak_report
from distill_bench.reports.speedup import write_report
from distill_bench.results.bench import read_bench_run, write_bench_run
from distill_bench.results.capacity import (
    RUN_FILE,
    CapacityRun,
    CapacitySettings,
    read_capacity_run,
    write_capacity_run,
)
from distill_bench.results.hardening import HardeningSettings
from distill_bench.results.shadow import ShadowSettings, read_shadow_run, write_shadow_run
from distill_bench.results.soak import SoakSettings
from distill_bench.runs.bench import BenchSettings, run_bench
from distill_bench.runs.capacity import DEFAULT_TARGETS, CapacityPlan, run_capacity
from distill_bench.runs.demo import run_demo
from distill_bench.runs.hardening import run_hardening
from distill_bench.runs.shadow import run_shadow
from distill_bench.runs.soak import run_soak
from distill_bench.samples import write_pngs
from modelrepo.dataset import DEFAULT_DATA_DIR


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m distill_bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="serve the models, load student then teacher, write the speedup report")
    demo.add_argument("--models", type=Path, default=Path("models"), help="model repository (default: models)")
    demo.add_argument("--out", type=Path, default=Path("reports"), help="report folder (default: reports)")
    demo.add_argument("--users", type=int, default=8, help="locust users, all spawned at once (default: 8)")
    demo.add_argument("--duration", type=int, default=30, help="seconds of load per model (default: 30)")
    demo.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="IDX test set for the load")
    demo.add_argument(
        "--capacity", action=argparse.BooleanOptionalAction, default=True, help="also measure capacity (default: yes)"
    )
    add_capacity_options(demo, step_s=6, search_s=75)
    capacity_cmd = commands.add_parser("capacity", help="the highest open-loop rate each target serves within a p99")
    capacity_cmd.add_argument("--models", type=Path, default=Path("models"), help="model repository (default: models)")
    capacity_cmd.add_argument("--out", type=Path, default=Path("reports"), help="report folder (default: reports)")
    capacity_cmd.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="IDX test set for the load")
    add_capacity_options(capacity_cmd, step_s=8, search_s=120)
    bench = commands.add_parser("bench", help="floor, onnxruntime and the service side by side under wrk")
    bench.add_argument("--models", type=Path, default=Path("models"), help="model repository (default: models)")
    bench.add_argument("--out", type=Path, default=Path("reports"), help="report folder (default: reports)")
    bench.add_argument("--duration", type=int, default=5, help="seconds per load point (default: 5)")
    samples = commands.add_parser("samples", help="save real test-set images as PNG, to try the API by hand")
    samples.add_argument("--out", type=Path, default=Path("samples"), help="folder (default: samples)")
    samples.add_argument("--count", type=int, default=8, help="how many images (default: 8)")
    samples.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="MNIST-format IDX folder with the test set")
    soak = commands.add_parser("soak", help="steady locust load for minutes: failures, p99 over time, RSS growth")
    soak.add_argument("--models", type=Path, default=Path("models"), help="model repository (default: models)")
    soak.add_argument("--out", type=Path, default=Path("reports"), help="report folder (default: reports)")
    soak.add_argument("--minutes", type=float, default=10.0, help="length of the load (default: 10)")
    soak.add_argument("--users", type=int, default=8, help="locust users, no wait between requests (default: 8)")
    soak.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="MNIST-format IDX folder with the test set")
    hardening = commands.add_parser("hardening", help="memory, liveness and drops under hostile but legal load")
    hardening.add_argument("--models", type=Path, default=Path("models"), help="model repository (default: models)")
    hardening.add_argument("--out", type=Path, default=Path("reports"), help="report folder (default: reports)")
    shadow = commands.add_parser("shadow", help="the student's latency with shadow traffic off and at every request")
    shadow.add_argument("--models", type=Path, default=Path("models"), help="model repository (default: models)")
    shadow.add_argument("--out", type=Path, default=Path("reports"), help="report folder (default: reports)")
    shadow.add_argument("--duration", type=int, default=6, help="seconds per wrk run (default: 6)")
    shadow.add_argument("--rounds", type=int, default=2, help="rounds alternating the rates (default: 2)")
    report = commands.add_parser("report", help="rewrite the speedup report from a recorded run")
    report.add_argument("--raw", type=Path, default=Path("reports/speedup-raw"), help="the recorded run")
    report.add_argument("--out", type=Path, default=Path("reports"), help="report folder (default: reports)")
    report.add_argument(
        "--capacity", type=Path, default=Path("reports/capacity-raw") / RUN_FILE, help="the recorded capacity run"
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        if not args.models.is_dir():
            parser.error(f"{args.models} is not a model repository: run `make train` first")
        raw = run_demo(args.models, args.out, LoadSettings(args.users, args.duration, args.data_dir))
        capacity = measure_capacity(args, parser) if args.capacity else None
        write_report(raw, args.out, capacity)
        print(f"speedup report: {args.out / 'speedup.md'}")
    elif args.command == "capacity":
        if not args.models.is_dir():
            parser.error(f"{args.models} is not a model repository: run `make train` first")
        measure_capacity(args, parser)
        print(f"capacity report: {args.out / 'capacity.md'}")
    elif args.command == "bench":
        if not args.models.is_dir():
            parser.error(f"{args.models} is not a model repository: run `make train` first")
        if not wrk_available():
            parser.error("wrk is not installed: apt-get install wrk (make bench does it where apt is available)")
        raw = args.out / "bench-raw" / "bench.json"
        write_bench_run(run_bench(BenchSettings(args.models, args.out, args.duration)), raw)
        write_bench_report(read_bench_run(raw), args.out)  # the report reads what was recorded, as a rerun would
        print(f"benchmark report: {args.out / 'bench.md'}")
    elif args.command == "samples":
        for path in write_pngs(args.out, args.data_dir, args.count):
            print(path)
    elif args.command == "soak":
        if not args.models.is_dir():
            parser.error(f"{args.models} is not a model repository: run `make train` first")
        result = run_soak(SoakSettings(args.models, args.out, args.minutes, args.users, args.data_dir))
        print(f"soak report: {write_soak_report(result, args.out)}")
        if not result.passed:
            sys.exit(f"soak failed: {result.failures} failures, RSS growth {result.rss_growth:+.1%}")
    elif args.command == "hardening":
        if not args.models.is_dir():
            parser.error(f"{args.models} is not a model repository: run `make train` first")
        hardened = run_hardening(HardeningSettings(args.models, args.out))
        print(f"hardening report: {write_hardening_report(hardened, args.out)}")
    elif args.command == "shadow":
        if not args.models.is_dir():
            parser.error(f"{args.models} is not a model repository: run `make train` first")
        if not wrk_available():
            parser.error("wrk is not installed: apt-get install wrk")
        raw = args.out / "shadow-raw" / "shadow.json"
        write_shadow_run(run_shadow(ShadowSettings(args.models, args.out, args.duration, rounds=args.rounds)), raw)
        print(f"shadow report: {write_shadow_report(read_shadow_run(raw), args.out)}")
    else:
        recorded = read_capacity_run(args.capacity) if args.capacity.is_file() else None
        write_report(args.raw, args.out, recorded)
        print(f"speedup report: {args.out / 'speedup.md'}")


def _cpus(text: str) -> tuple[int, ...] | None:
    if text == "none":
        return None
    try:
        return tuple(int(c) for c in text.split(",")) if text else ()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a comma-separated list of CPU numbers, or none") from None


def add_capacity_options(parser: argparse.ArgumentParser, step_s: int, search_s: float) -> None:
    default = CapacitySettings()
    parser.add_argument("--slo-p99-ms", type=float, default=default.slo_p99_ms, help="latency objective (default: 50)")
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS), help="v2:MODEL and mix:ROUTE, comma-separated")
    parser.add_argument("--step-seconds", type=int, default=step_s, help=f"measured seconds per rate ({step_s})")
    parser.add_argument("--search-seconds", type=float, default=search_s, help=f"at most, per target ({search_s:g})")
    parser.add_argument("--resolution", type=float, default=default.resolution, help="stop within this fraction")
    parser.add_argument("--start-rate", type=float, default=None, help="first offered rate (default: from a probe)")
    parser.add_argument(
        "--service-cpus", type=_cpus, default=(), help="CPUs to pin the service to, e.g. 0 (default: the first "
        "available when there are two or more; the generator gets the rest); none: pin nothing",
    )  # fmt: skip
    parser.add_argument("--generator-processes", type=int, default=1, help="locust processes at first (default: 1)")
    parser.add_argument(
        "--max-generator-processes", type=int, default=0, help="most locust processes (default: its CPUs' count)"
    )
    parser.add_argument("--max-users", type=int, default=default.max_users, help="most locust users, all processes")


def measure_capacity(args: argparse.Namespace, parser: argparse.ArgumentParser) -> CapacityRun:
    """The capacity run the options ask for, recorded under `<out>/capacity-raw` and reported from there."""
    if args.step_seconds < 1 or args.search_seconds <= 0 or args.slo_p99_ms <= 0 or args.max_users < 1:
        parser.error("--step-seconds, --search-seconds, --slo-p99-ms and --max-users must be positive")
    settings = CapacitySettings(
        slo_p99_ms=args.slo_p99_ms,
        step_s=args.step_seconds,
        search_s=args.search_seconds,
        resolution=args.resolution,
        start_rate=args.start_rate,
        generator_processes=max(1, args.generator_processes),
        max_generator_processes=args.max_generator_processes,
        max_users=args.max_users,
    )
    plan = CapacityPlan(
        args.models, args.out, tuple(args.targets.split(",")), settings, args.service_cpus, args.data_dir
    )
    raw = write_capacity_run(run_capacity(plan), plan.raw)
    run = read_capacity_run(raw)  # the report reads what was recorded, as a rerun would
    write_capacity_report(run, args.out)
    return run


if __name__ == "__main__":
    main()
