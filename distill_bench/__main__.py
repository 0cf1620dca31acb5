"""python -m distill_bench demo | bench | samples | soak | hardening | report"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from distill_bench.drivers.locust import LoadSettings
from distill_bench.drivers.wrk import wrk_available
from distill_bench.reports.bench import write_bench_report
from distill_bench.reports.hardening import write_hardening_report
from distill_bench.reports.soak import write_soak_report
from distill_bench.reports.speedup import write_report
from distill_bench.results.bench import read_bench_run, write_bench_run
from distill_bench.results.hardening import HardeningSettings
from distill_bench.results.soak import SoakSettings
from distill_bench.runs.bench import BenchSettings, run_bench
from distill_bench.runs.demo import run_demo
from distill_bench.runs.hardening import run_hardening
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
    report = commands.add_parser("report", help="rewrite the speedup report from a recorded run")
    report.add_argument("--raw", type=Path, default=Path("reports/speedup-raw"), help="the recorded run")
    report.add_argument("--out", type=Path, default=Path("reports"), help="report folder (default: reports)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        if not args.models.is_dir():
            parser.error(f"{args.models} is not a model repository: run `make train` first")
        run_demo(args.models, args.out, LoadSettings(args.users, args.duration, args.data_dir))
        print(f"speedup report: {args.out / 'speedup.md'}")
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
    else:
        write_report(args.raw, args.out)
        print(f"speedup report: {args.out / 'speedup.md'}")


if __name__ == "__main__":
    main()
