"""The steps, each of which first makes sure its inputs exist (earlier steps skip when up to date), and the
pipeline that composes them. The CLI (`__main__`) parses arguments, calls one of these and prints the result.

teacher -> logits -> students (KD and label-only control, seeds 0..n-1) -> export (served repository + control
in the run directory) -> report. Step wall times are recorded in `<run_dir>/timings.json` for the report.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from distill_training.comparison import CONTROL, KD, best_seed, summarise
from distill_training.config import PipelineConfig, lookup, save_config, to_dict
from distill_training.data import Dataset, load_dataset
from distill_training.export import TEACHER_METHOD, Published, publish
from distill_training.latency import measure_latency
from distill_training.logits_cache import Views, cached_views
from distill_training.nets import STUDENTS, TEACHERS
from distill_training.report import Row, build_rows, environment, write_report
from distill_training.staleness import digest
from distill_training.train import (
    StudentResult,
    autocast_dtype,
    build_student,
    build_teacher,
    load_weights,
    train_student,
    train_teacher,
    trained_student,
)
from modelrepo.host import available_cores

T = TypeVar("T")
TIMINGS = "timings.json"
CACHED_SECONDS = 2.0  # a step that took less than this found its outputs up to date


@dataclass
class Context:
    """What the steps share in one invocation: the config, the data (loaded once) and step timings."""

    cfg: PipelineConfig
    data: Dataset
    timings: dict[str, float]
    loads: dict[str, float] = field(default_factory=dict)
    views: tuple[Views, str] | None = None  # the students' training views, built once per invocation

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.run_dir)


def open_context(cfg: PipelineConfig) -> Context:
    """Check the names the config gives (before any training), load the data, save the config in the run dir."""
    lookup(TEACHERS, cfg.teacher.architecture, "teacher.architecture")
    lookup(STUDENTS, cfg.student.architecture, "student.architecture")
    data = load_dataset(cfg.data)
    run_dir = Path(cfg.run_dir)
    save_config(cfg, run_dir / "config.yaml")
    return Context(cfg, data, {})


def _timed(ctx: Context, step: str, fn: Callable[[], T]) -> T:
    """Run a step and record its wall time (a cached step takes well under a second)."""
    start = time.perf_counter()
    result = fn()
    ctx.timings[step] = ctx.timings.get(step, 0.0) + time.perf_counter() - start
    ctx.loads[step] = max(ctx.loads.get(step, 0.0), os.getloadavg()[0])  # how shared the cores were
    return result


def teacher_weights(ctx: Context) -> Path:
    return _timed(ctx, "teacher", lambda: train_teacher(ctx.cfg, ctx.data, ctx.run_dir / "teacher"))


def student_views(ctx: Context) -> tuple[Views, str]:
    if ctx.views is None:
        weights = teacher_weights(ctx)
        ctx.views = _timed(ctx, "logits", lambda: cached_views(ctx.cfg, ctx.data, weights, ctx.run_dir / "logits"))
    return ctx.views


def _student_dir(ctx: Context, method: str, seed: int) -> Path:
    return ctx.run_dir / "students" / f"{method}-seed{seed}"


def student(ctx: Context, method: str, seed: int, *, progress: bool = True) -> StudentResult:
    views, key = student_views(ctx)
    out = _student_dir(ctx, method, seed)
    cfg = ctx.cfg.student
    return _timed(
        ctx,
        "students",
        lambda: train_student(
            cfg, ctx.data, views, method=method, seed=seed, logits_key=key, out_dir=out, progress=progress
        ),
    )


def _student_in_worker(cfg: PipelineConfig, method: str, seed: int) -> None:
    """One student in a worker process, which loads its own data and cached views."""
    student(Context(cfg, load_dataset(cfg.data), {}), method, seed, progress=False)


def train_students(ctx: Context, jobs: list[tuple[str, int]]) -> list[StudentResult]:
    """The (method, seed) students. Those not up to date train side by side, one process per core: each trains
    on one thread (`student.threads`), so the results are those of training them one after another."""
    _, key = student_views(ctx)  # the teacher logits are cached before any worker reads them
    todo = [
        (method, seed)
        for method, seed in jobs
        if trained_student(
            ctx.cfg.student, method=method, seed=seed, logits_key=key, out_dir=_student_dir(ctx, method, seed)
        )
        is None
    ]
    processes = min(len(todo), available_cores())
    if processes > 1:

        def run() -> None:
            spawn = multiprocessing.get_context("spawn")  # fork is unsafe after torch's thread pools started
            with ProcessPoolExecutor(processes, mp_context=spawn) as pool:
                futures = [pool.submit(_student_in_worker, ctx.cfg, method, seed) for method, seed in todo]
                for future in tqdm(as_completed(futures), total=len(futures), desc=f"students ({processes} processes)"):
                    future.result()

        _timed(ctx, "students", run)
    return [student(ctx, method, seed) for method, seed in jobs]


def kd_vs_control(ctx: Context, seeds: int) -> dict[str, Any]:
    """Train both methods on seeds 0..seeds-1 (same init, same batches); mean and spread of test accuracy."""
    methods = (KD, CONTROL)
    trained = iter(train_students(ctx, [(m, s) for m in methods for s in range(seeds)]))
    runs = {m: [next(trained) for _ in range(seeds)] for m in methods}
    summary = summarise(runs, to_dict(ctx.cfg.student))
    (ctx.run_dir / "comparison.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def tune(ctx: Context, temperatures: list[float], weights: list[float]) -> list[dict[str, float]]:
    """Grid of KD temperature and weight, seed 0, ranked by validation accuracy (the test set stays unseen)."""
    views, key = student_views(ctx)
    rows = []
    for temperature in temperatures:
        for weight in weights:
            cfg = replace(ctx.cfg.student, temperature=temperature, kd_weight=weight)
            out = ctx.run_dir / "tuning" / f"T{temperature:g}-w{weight:g}-{digest(to_dict(cfg))[:8]}"
            result = train_student(cfg, ctx.data, views, method=KD, seed=0, logits_key=key, out_dir=out)
            rows.append({"temperature": temperature, "kd_weight": weight, "val_accuracy": result.val_accuracy})
    rows.sort(key=lambda r: -r["val_accuracy"])
    (ctx.run_dir / "tuning.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def best_on_validation(ctx: Context, method: str) -> StudentResult:
    """Of seeds 0..seeds-1 (trained once, for kd-vs-control too), the one `best_seed` picks."""
    results = [student(ctx, method, seed) for seed in range(ctx.cfg.student.seeds)]
    return results[best_seed([r.val_accuracy for r in results])]


def _selection(result: StudentResult, seeds: int) -> dict[str, Any]:
    return {"seed": result.seed, "val_accuracy": result.val_accuracy, "rule": f"best validation of seeds 0-{seeds - 1}"}


def export_all(ctx: Context, repo: Path) -> dict[str, Published]:
    """The served repository gets the teacher and the KD student; the control goes to `<run_dir>/export`.
    Each method's student is its best seed on the validation split."""
    cfg, data = ctx.cfg, ctx.data
    teacher_path = teacher_weights(ctx)
    kd, control = best_on_validation(ctx, KD), best_on_validation(ctx, CONTROL)

    def run() -> dict[str, Published]:
        training = to_dict(cfg)
        teacher_model = load_weights(build_teacher(cfg.teacher, data), teacher_path)
        out = {
            "teacher": publish(
                teacher_model,
                data,
                cfg.export,
                repo=repo,
                name=cfg.teacher.name,
                role="teacher",
                method=TEACHER_METHOD,
                architecture=cfg.teacher.architecture,
                teacher=None,
                source=teacher_path,
                config=training,
            )
        }
        jobs: list[tuple[str, StudentResult, Path, str]] = [
            ("student", kd, repo, cfg.student.name),
            ("control", control, ctx.run_dir / "export", cfg.student.control_name),
        ]
        for label, result, target, name in jobs:
            model = load_weights(build_student(cfg.student, data), result.weights)
            out[label] = publish(
                model,
                data,
                cfg.export,
                repo=target,
                name=name,
                role="student",
                method=result.method,
                architecture=cfg.student.architecture,
                teacher=cfg.teacher.name,
                source=result.weights,
                config=training | {"selected": _selection(result, cfg.student.seeds)},
            )
        return out

    return _timed(ctx, "export", run)


def save_timings(ctx: Context) -> dict[str, dict[str, float]]:
    """Build time (and 1-minute load average at its end) of each step: this invocation's where the step did
    work, else those of the last invocation that built it."""
    path = ctx.run_dir / TIMINGS
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = {}
    seconds: dict[str, float] = dict(saved.get("seconds", {}))
    loads: dict[str, float] = dict(saved.get("load_1min", {}))
    for step, spent in ctx.timings.items():
        if spent >= CACHED_SECONDS or step not in seconds:
            seconds[step], loads[step] = spent, ctx.loads.get(step, 0.0)
    timings = {"seconds": seconds, "load_1min": loads}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(timings, indent=2) + "\n")
    return timings


@dataclass(frozen=True)
class Report:
    path: Path  # distillation.md; the JSON and the plots lie next to it
    rows: list[Row]  # teacher, student, control


def report(ctx: Context, repo: Path, report_dir: Path | None = None) -> Report:
    """The report step: export what is not up to date, the seed comparison, batch-1 latency, the report."""
    return _write_report(ctx, export_all(ctx, repo), kd_vs_control(ctx, ctx.cfg.student.seeds), report_dir)


def _write_report(
    ctx: Context, published: dict[str, Published], comparison: dict[str, Any], report_dir: Path | None
) -> Report:
    cfg = ctx.cfg
    paths = {label: pub.model_file for label, pub in published.items()}
    latencies = measure_latency(paths, threads=cfg.export.latency_threads, runs=cfg.export.latency_runs)
    rows = build_rows(published, latencies)
    env = environment("bf16" if autocast_dtype(cfg.teacher.precision) else "fp32")
    tuning_file = ctx.run_dir / "tuning.json"
    tuning = json.loads(tuning_file.read_text()) if tuning_file.is_file() else []
    path = write_report(
        report_dir or Path(cfg.export.report_dir),
        cfg=cfg,
        rows=rows,
        comparison=comparison,
        timings=save_timings(ctx),
        tuning=tuning,
        env=env,
    )
    return Report(path, rows)


@dataclass(frozen=True)
class PipelineRun:
    comparison: dict[str, Any]
    published: dict[str, Published]
    report: Report
    seconds: float  # this invocation's wall time


def run_pipeline(ctx: Context, repo: Path, report_dir: Path | None = None) -> PipelineRun:
    """Every step: teacher, logits, KD and control students on every seed, export, report."""
    start = time.perf_counter()
    comparison = kd_vs_control(ctx, ctx.cfg.student.seeds)
    published = export_all(ctx, repo)
    written = _write_report(ctx, published, comparison, report_dir)
    return PipelineRun(comparison, published, written, time.perf_counter() - start)
