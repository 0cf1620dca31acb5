"""python -m distill_bench demo | report"""

from __future__ import annotations

import argparse
from pathlib import Path

from distill_bench.demo import run_demo
from distill_bench.load import LoadSettings
from distill_bench.speedup import write_report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m distill_bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="serve the models, load student then teacher, write the speedup report")
    demo.add_argument("--models", type=Path, default=Path("models"), help="model repository (default: models)")
    demo.add_argument("--out", type=Path, default=Path("reports"), help="report folder (default: reports)")
    demo.add_argument("--users", type=int, default=8, help="locust users, all spawned at once (default: 8)")
    demo.add_argument("--duration", type=int, default=30, help="seconds of load per model (default: 30)")
    demo.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist", help="IDX test set for the load")
    report = commands.add_parser("report", help="rewrite the speedup report from a recorded run")
    report.add_argument("--raw", type=Path, default=Path("reports/speedup-raw"), help="the recorded run")
    report.add_argument("--out", type=Path, default=Path("reports"), help="report folder (default: reports)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        if not args.models.is_dir():
            parser.error(f"{args.models} is not a model repository: run `make train` first")
        run_demo(args.models, args.out, LoadSettings(args.users, args.duration, args.data_dir))
    else:
        write_report(args.raw, args.out)
    print(f"speedup report: {args.out / 'speedup.md'}")


if __name__ == "__main__":
    main()
