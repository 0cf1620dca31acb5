"""`python -m distill_training <step>`: plan, teacher, logits, student, search, compare, tune, export, quantize,
report, pipeline; and distill (the pipeline for your own teacher, an ONNX file, on your own data).

Every step first brings its inputs up to date (skipping what is already built), so each runs on its own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from distill_training import distill, distributed, pipeline, steps
from distill_training.config import PROFILES, ConfigError, PipelineConfig, load_config, parse_set_args
from distill_training.context import Context, open_context
from distill_training.data import DatasetError
from distill_training.export import ExportValidationError
from distill_training.losses import LOSSES
from distill_training.onnx_teacher import OnnxTeacherError
from distill_training.planning import RunPlan
from distill_training.staleness import read_meta

Step = Callable[[Context, argparse.Namespace], None]


def _plan(ctx: Context, args: argparse.Namespace) -> None:
    run_plan = steps.run_plan(ctx)
    if run_plan.speeds is not None:
        speeds = run_plan.speeds
        print(
            f"measured (1-minute load average {speeds.load_1min:.1f}): teacher epoch "
            + ", ".join(f"{s:.0f} s" for s in speeds.teacher_epoch_s)
            + f" side by side, {speeds.teacher_alone_s:.0f} s alone on {speeds.teacher_alone_threads} thread(s); "
            + "student epoch "
            + ", ".join(f"{spec} {s:.1f} s" for spec, s in speeds.student_epoch_s.items())
        )
    print("batch-1 latency before training: " + ", ".join(f"{k} {v:.1f} µs" for k, v in run_plan.latency_us.items()))
    print(f"-> {ctx.run_dir / 'plan.json'}")


def _teacher(ctx: Context, args: argparse.Namespace) -> None:
    for path in steps.teacher_weights(ctx):
        print(f"teacher: {path} (best val accuracy {read_meta(path.parent)['val_accuracy']:.4f})")


def _logits(ctx: Context, args: argparse.Namespace) -> None:
    views = steps.student_views(ctx)
    print(
        f"teacher logits: {tuple(views.logits.shape)} ({views.views.count} views of {len(views.x):,} training "
        f"images), cache key {views.key[:16]}"
    )


def _candidate(ctx: Context, args: argparse.Namespace) -> str:
    return str(args.candidate or steps.student_plan(ctx).candidates[0])


def _student(ctx: Context, args: argparse.Namespace) -> None:
    spec = _candidate(ctx, args)
    r = steps.student(ctx, (spec, args.method or ctx.cfg.student.method, args.seed, steps.student_plan(ctx).epochs))
    print(
        f"student {spec} {r.method} seed {r.seed}: val {r.val_accuracy:.4f}, test {r.test_accuracy:.4f} -> {r.weights}"
    )


def _search(ctx: Context, args: argparse.Namespace) -> None:
    for spec, r in steps.search(ctx).items():
        print(f"{spec:20s} {r.method} seed 0: val {r.val_accuracy:.4f}, test {r.test_accuracy:.4f}")


def _compare(ctx: Context, args: argparse.Namespace) -> None:
    teacher = steps.teachers(ctx).served.record.test_accuracy
    _print_comparison(steps.compare(ctx, _candidate(ctx, args), teacher), ctx.run_dir)


def _tune(ctx: Context, args: argparse.Namespace) -> None:
    floats = [[float(v) for v in text.split(",")] for text in (args.temperatures, args.weights)]
    rows = steps.tune(ctx, _candidate(ctx, args), *floats)
    for row in rows:
        print(f"T={row.temperature:<4g} weight={row.kd_weight:<4g} val accuracy {row.val_accuracy:.4f}")
    print(
        f"best on the validation split: --set student.temperature={rows[0].temperature:g} "
        f"--set student.kd_weight={rows[0].kd_weight:g} -> {ctx.run_dir / 'tuning.json'}"
    )


def _export(ctx: Context, args: argparse.Namespace) -> None:
    _print_built(pipeline.build(ctx, Path(args.out)))


def _quantize(ctx: Context, args: argparse.Namespace) -> None:
    ctx.cfg = replace(ctx.cfg, quantize=replace(ctx.cfg.quantize, enabled=True))  # the step asked for by name
    built = pipeline.build(ctx, Path(args.out))
    for t in built.quantization:
        print(
            f"{t.model}: {t.method} {t.calibration}, test {t.fp32_accuracy:.2%} -> {t.int8_accuracy:.2%}, "
            f"agreement {t.agreement:.2%}; {t.decision.reason}"
        )


def _report(ctx: Context, args: argparse.Namespace) -> None:
    written = pipeline.report(ctx, Path(args.out), _reports(args))
    _print_built(written.built)
    print(f"report: {written.path}")


def _pipeline(ctx: Context, args: argparse.Namespace) -> None:
    run = pipeline.run_pipeline(ctx, Path(args.out), _reports(args))
    _print_comparison(run.report.built.comparison, ctx.run_dir)
    _print_built(run.report.built)
    print(f"report: {run.report.path}")
    print(f"pipeline ({ctx.cfg.profile}) done in {run.seconds:.0f} s; models in {args.out}")


def _distill(ctx: Context, args: argparse.Namespace) -> None:
    _pipeline(ctx, args)
    print(f"serve teacher and student side by side: python -m service --models {args.out}")


def _reports(args: argparse.Namespace) -> Path | None:
    return Path(args.reports) if args.reports else None


def print_plan(cfg: PipelineConfig, run_plan: RunPlan) -> None:
    plan = run_plan.plan
    budget = f"{run_plan.budget_s / 60:g}-minute budget" if run_plan.budget_s else "no time budget"
    teacher = (
        f"{cfg.onnx_teacher.path} (not trained here)"
        if cfg.onnx_teacher.path
        else f"{plan.members} member(s) x {plan.teacher_epochs} epochs"
    )
    print(
        f"plan ({budget}): teacher {teacher}, students "
        f"{plan.students.epochs} epochs x {plan.students.seeds} seeds, candidates {', '.join(plan.students.candidates)}"
    )
    cuts = [*plan.cuts, *plan.students.cuts]
    if cuts:
        print(f"the budget cut: {'; '.join(cuts)}")


def _print_comparison(summary: dict[str, Any], run_dir: Path) -> None:
    for method, stats in summary["methods"].items():
        accs = [f"{a:.4f}" for a in stats["test_accuracy"]]
        print(f"{method:11s} {stats['mean']:.2%} ± {stats['std'] * 100:.2f} pts  {accs}")
    for method, v in summary["versus_control"].items():
        print(
            f"{method} - control: {v['mean'] * 100:+.2f} ± {v['std'] * 100:.2f} pts, ahead on {v['wins']}/"
            f"{summary['seeds']} seeds, {v['gap_closed']:.0%} of the gap to the teacher closed"
        )
    print(f"-> {run_dir / 'comparison.json'}")


def _print_built(built: pipeline.Built) -> None:
    for e in built.frontier:
        mark = "*" if e.exported else " "
        print(
            f"{mark} {e.role:9s} {e.name:34s} {e.architecture:16s} {e.method:10s} {e.parameters:>9,} params  "
            f"val {e.val_accuracy:.2%}  test {e.test_accuracy:.2%}  p50 {e.latency_us:8.1f} µs"
        )
    print(
        f"exported student: {built.student.card.name} ({built.choice.spec}, {built.student.record.method}); "
        f"latency budget: {built.choice.rule}"
    )


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
    common.add_argument(
        "--time-budget-min", type=float, help="fit the work to this many minutes on this machine (0: no budget)"
    )
    common.add_argument(
        "--latency-budget-us", type=float, help="the exported student's batch-1 latency at most this (0: none)"
    )
    common.add_argument(
        "--min-speedup", type=float, help="the exported student at least this many times faster than the teacher"
    )

    def add(name: str, fn: Step, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(fn=fn)
        return p

    add("plan", _plan, "measure this machine, fit the recipe to the time budget, check the latency budget; print it")
    add("teacher", _teacher, "train the teacher's members (checkpoint every epoch; resumes when interrupted)")
    add("logits", _logits, "cache the teacher's logits on the students' views")
    p = add("student", _student, "train one student")
    p.add_argument("--candidate", help="architecture:size, e.g. cnn:16-32 (default: the first candidate)")
    p.add_argument("--method", choices=list(LOSSES), help="how it is trained (default: student.method)")
    p.add_argument("--seed", type=int, default=0)
    add("search", _search, "train every candidate student with student.method on seed 0")
    p = add("compare", _compare, "every method and the control on the same seeds of one candidate; mean and spread")
    p.add_argument("--candidate", help="architecture:size (default: the first candidate)")
    p = add("tune", _tune, "grid-search the KD temperature and weight on the validation split (seed 0)")
    p.add_argument("--candidate", help="architecture:size (default: the first candidate)")
    p.add_argument("--temperatures", default="1,2,4", help="comma-separated (default 1,2,4)")
    p.add_argument("--weights", default="0.5,0.7,0.9", help="comma-separated KD weights (default 0.5,0.7,0.9)")
    for name, fn, help_ in (
        ("export", _export, "search, choose, compare; publish the teacher and the student (the rest into the run dir)"),
        ("quantize", _quantize, "INT8 copies of the teacher and the student, published as <name>-int8 by the gate"),
        ("report", _report, "measure latency and write reports/distillation.md, .json and plots"),
        ("pipeline", _pipeline, "all steps, skipping those whose outputs are up to date"),
    ):
        p = add(name, fn, help_)
        p.add_argument("--out", default="models", help="model repository to write (default: models)")
        if name not in ("export", "quantize"):
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
    flags = {
        "time_budget_min": args.time_budget_min,
        "latency_budget_us": args.latency_budget_us,
        "min_speedup": args.min_speedup,
    }
    overrides.update({f"budget.{key}": str(value) for key, value in flags.items() if value is not None})
    return load_config(args.profile, args.config, overrides)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        world = distributed.start()  # under torchrun: join the other ranks
        ctx = open_context(_config(args))
        run_plan = steps.run_plan(ctx)
        if not world.main:
            steps.follow(ctx, args.step)
            return 0
        print_plan(ctx.cfg, run_plan)
        args.fn(ctx, args)
    except RuntimeError as err:
        if not distributed.peer_failure(err):
            raise
        print(f"error: {distributed.peer_lost(err)}", file=sys.stderr)
        return 1
    except (DatasetError, ConfigError, OnnxTeacherError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ExportValidationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        distributed.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
