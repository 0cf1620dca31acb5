"""`python -m distill_training <step>`: teacher, logits, student, kd-vs-control, tune, export, report, pipeline;
and distill (the pipeline for your own teacher, an ONNX file, on your own data).

Every step first brings its inputs up to date (skipping what is already built), so each runs on its own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill_training import distill
from distill_training import pipeline as steps
from distill_training.config import PROFILES, ConfigError, PipelineConfig, load_config, parse_set_args
from distill_training.context import Context, open_context
from distill_training.data import DatasetError
from distill_training.export import ExportValidationError, Published
from distill_training.losses import LOSSES
from distill_training.onnx_teacher import OnnxTeacherError
from distill_training.staleness import read_meta

Step = Callable[[Context, argparse.Namespace], None]


def _teacher(ctx: Context, args: argparse.Namespace) -> None:
    path = steps.teacher_weights(ctx)
    meta = read_meta(path.parent)
    print(f"teacher: {path} (best val accuracy {meta['val_accuracy']:.4f})")


def _logits(ctx: Context, args: argparse.Namespace) -> None:
    (x, _, logits), key = steps.student_views(ctx)
    print(f"teacher logits: {tuple(logits.shape)} for {len(x):,} training views, cache key {key[:16]}")


def _student(ctx: Context, args: argparse.Namespace) -> None:
    r = steps.student(ctx, args.method, args.seed)
    print(f"student {r.method} seed {r.seed}: val {r.val_accuracy:.4f}, test {r.test_accuracy:.4f} -> {r.weights}")


def _kd_vs_control(ctx: Context, args: argparse.Namespace) -> None:
    _print_comparison(steps.kd_vs_control(ctx, args.seeds or ctx.cfg.student.seeds), ctx.run_dir)


def _tune(ctx: Context, args: argparse.Namespace) -> None:
    floats = [[float(v) for v in text.split(",")] for text in (args.temperatures, args.weights)]
    rows = steps.tune(ctx, *floats)
    for row in rows:
        print(f"T={row['temperature']:<4g} weight={row['kd_weight']:<4g} val accuracy {row['val_accuracy']:.4f}")
    best = rows[0]
    print(
        f"best on the validation split: --set student.temperature={best['temperature']:g} "
        f"--set student.kd_weight={best['kd_weight']:g} -> {ctx.run_dir / 'tuning.json'}"
    )


def _export(ctx: Context, args: argparse.Namespace) -> None:
    _print_published(steps.export_all(ctx, Path(args.out)))


def _report(ctx: Context, args: argparse.Namespace) -> None:
    _print_report(steps.report(ctx, Path(args.out), _reports(args)))


def _pipeline(ctx: Context, args: argparse.Namespace) -> None:
    run = steps.run_pipeline(ctx, Path(args.out), _reports(args))
    _print_comparison(run.comparison, ctx.run_dir)
    _print_published(run.published)
    _print_report(run.report)
    print(f"pipeline ({ctx.cfg.profile}) done in {run.seconds:.0f} s; models in {args.out}")


def _distill(ctx: Context, args: argparse.Namespace) -> None:
    _pipeline(ctx, args)
    print(f"serve teacher and student side by side: python -m service --models {args.out}")


def _reports(args: argparse.Namespace) -> Path | None:
    return Path(args.reports) if args.reports else None


def _print_comparison(summary: dict[str, Any], run_dir: Path) -> None:
    kd, none, diff = summary["kd"], summary["none"], summary["difference"]
    print(f"KD:      {kd['mean']:.2%} ± {kd['std'] * 100:.2f} pts  {[f'{a:.4f}' for a in kd['test_accuracy']]}")
    print(f"control: {none['mean']:.2%} ± {none['std'] * 100:.2f} pts  {[f'{a:.4f}' for a in none['test_accuracy']]}")
    print(
        f"KD - control: {diff['mean'] * 100:+.2f} ± {diff['std'] * 100:.2f} pts, KD ahead on "
        f"{diff['kd_wins']}/{summary['seeds']} seeds -> {run_dir / 'comparison.json'}"
    )


def _print_published(published: dict[str, Published]) -> None:
    for label, pub in published.items():
        record = pub.card.versions[pub.card.latest_version]
        diff = pub.validation.get("max_abs_diff")
        checked = f"max abs diff {diff:.1e}" if diff is not None else "copied as it is"
        print(
            f"{label}: {pub.model_file} ({record.parameters:,} params, {record.size_bytes / 1024:,.0f} KiB, "
            f"ONNX test accuracy {record.test_accuracy:.4f}, {checked})"
        )


def _print_report(report: steps.Report) -> None:
    teacher = report.rows[0]
    for row in report.rows:
        print(
            f"{row.label:8s} {row.accuracy:.2%}  {row.parameters:>9,} params  p50 {row.p50_us:8.1f} µs  "
            f"speedup {teacher.p50_us / row.p50_us:5.1f}x"
        )
    print(f"report: {report.path}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m distill_training", description=__doc__)
    sub = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--profile", choices=PROFILES, default="default", help="defaults to start from")
    common.add_argument("--config", type=Path, help="YAML file overriding the profile (same nesting as config.yaml)")
    common.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override one setting, e.g. --set teacher.epochs=5 (repeatable)",
    )
    common.add_argument(
        "--data-dir", help="IDX files, train.npz/test.npz or an image folder (default: the Debian Fashion-MNIST)"
    )
    common.add_argument(
        "--run-dir",
        help="work directory for checkpoints and caches (default runs/<profile>; distill: runs/NAME-<profile>)",
    )

    def add(name: str, fn: Step, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(fn=fn)
        return p

    add("teacher", _teacher, "train the teacher (checkpoint every epoch; resumes when interrupted)")
    add("logits", _logits, "cache the teacher's logits on the training views")
    p = add("student", _student, "train one student")
    p.add_argument("--method", choices=list(LOSSES), default="kd", help="how it is trained (losses.LOSSES)")
    p.add_argument("--seed", type=int, default=0)
    p = add("kd-vs-control", _kd_vs_control, "train KD and control students on the same seeds; mean and spread")
    p.add_argument("--seeds", type=int, default=0, help="number of seeds (default: student.seeds of the profile)")
    p = add("tune", _tune, "grid-search the KD temperature and weight on the validation split (seed 0)")
    p.add_argument("--temperatures", default="1,2,4", help="comma-separated (default 1,2,4)")
    p.add_argument("--weights", default="0.5,0.7,0.9", help="comma-separated KD weights (default 0.5,0.7,0.9)")
    for name, fn, help_ in (
        ("export", _export, "export, validate and publish the teacher and KD student (control into the run dir)"),
        ("report", _report, "measure latency and write reports/distillation.md, .json and plots"),
        ("pipeline", _pipeline, "all steps, skipping those whose outputs are up to date"),
    ):
        p = add(name, fn, help_)
        p.add_argument("--out", default="models", help="model repository to write (default: models)")
        if name != "export":
            p.add_argument("--reports", help="report directory (default: export.report_dir, 'reports')")
    p = add("distill", _distill, "your teacher (an ONNX file) on your data: students, both models' cards, report")
    p.add_argument("--out", default="models", help="model repository to write (default: models)")
    p.add_argument("--reports", help="report directory (default: reports/NAME)")
    distill.add_arguments(p)
    return parser


def _config(args: argparse.Namespace) -> PipelineConfig:
    overrides: dict[str, str] = {}
    if args.data_dir:
        overrides["data.data_dir"] = args.data_dir
    if args.step == "distill":
        overrides.update(distill.overrides(args))
    overrides.update(parse_set_args(args.set))
    if args.run_dir:
        overrides["run_dir"] = args.run_dir
    return load_config(args.profile, args.config, overrides)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        ctx = open_context(_config(args))
        args.fn(ctx, args)
    except (DatasetError, ConfigError, OnnxTeacherError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ExportValidationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
