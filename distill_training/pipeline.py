"""The steps, each of which first makes sure its inputs exist (earlier steps skip when up to date), and the
pipeline that composes them. The CLI (`__main__`) parses arguments, calls one of these and prints the result.

teacher -> logits -> students (KD and label-only control, seeds 0..n-1) -> export (served repository + control
in the run directory) -> report. Each step takes the invocation's `Context` (config, data, step timings).
"""

from __future__ import annotations

import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from distill_training.comparison import CONTROL, KD, best_seed, summarise
from distill_training.config import PipelineConfig, to_dict
from distill_training.context import Context, load_data, save_timings, timed
from distill_training.export import TEACHER_METHOD, Published, publish
from distill_training.latency import measure_latency
from distill_training.logits_cache import Views, cached_views
from distill_training.onnx_teacher_card import publish_onnx_teacher
from distill_training.onnx_views import onnx_cached_views, teacher_facts
from distill_training.report import Row, build_rows, environment, write_report
from distill_training.samples import write_samples
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


def teacher_weights(ctx: Context) -> Path:
    return timed(ctx, "teacher", lambda: train_teacher(ctx.cfg, ctx.data, ctx.run_dir / "teacher"))


def student_views(ctx: Context) -> tuple[Views, str]:
    """(images, labels, teacher logits) and their key, from our teacher or from one brought as an ONNX file."""
    if ctx.views is None and ctx.cfg.onnx_teacher.path:
        ctx.views = timed(ctx, "logits", lambda: onnx_cached_views(ctx.cfg, ctx.data, ctx.run_dir / "logits"))
    if ctx.views is None:
        weights = teacher_weights(ctx)
        ctx.views = timed(ctx, "logits", lambda: cached_views(ctx.cfg, ctx.data, weights, ctx.run_dir / "logits"))
    return ctx.views


def _student_dir(ctx: Context, method: str, seed: int) -> Path:
    return ctx.run_dir / "students" / f"{method}-seed{seed}"


def student(ctx: Context, method: str, seed: int, *, progress: bool = True) -> StudentResult:
    views, key = student_views(ctx)
    out = _student_dir(ctx, method, seed)
    cfg = ctx.cfg.student
    return timed(
        ctx,
        "students",
        lambda: train_student(
            cfg, ctx.data, views, method=method, seed=seed, logits_key=key, out_dir=out, progress=progress
        ),
    )


def _student_in_worker(cfg: PipelineConfig, method: str, seed: int) -> None:
    """One student in a worker process, which loads its own data and cached views."""
    student(Context(cfg, load_data(cfg), {}), method, seed, progress=False)


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

        timed(ctx, "students", run)
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
    kd, control = best_on_validation(ctx, KD), best_on_validation(ctx, CONTROL)

    def run() -> dict[str, Published]:
        training = to_dict(cfg)
        out = {"teacher": _publish_teacher(ctx, repo)}
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
        write_samples(data, repo, cfg.data.data_dir)  # real test images and their labels, for people to try
        return out

    return timed(ctx, "export", run)


def _publish_teacher(ctx: Context, repo: Path) -> Published:
    """Our teacher, exported and validated; or the one brought as an ONNX file, copied with its card."""
    cfg, data = ctx.cfg, ctx.data
    if cfg.onnx_teacher.path:
        _, key = student_views(ctx)
        return publish_onnx_teacher(cfg, data, repo, teacher_facts(ctx.run_dir / "logits", key))
    teacher_path = teacher_weights(ctx)
    return publish(
        load_weights(build_teacher(cfg.teacher, data), teacher_path),
        data,
        cfg.export,
        repo=repo,
        name=cfg.teacher.name,
        role="teacher",
        method=TEACHER_METHOD,
        architecture=cfg.teacher.architecture,
        teacher=None,
        source=teacher_path,
        config=to_dict(cfg),
    )


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
    models = {label: (pub.model_file, pub.card.input) for label, pub in published.items()}
    latencies = measure_latency(models, threads=cfg.export.latency_threads, runs=cfg.export.latency_runs)
    rows = build_rows(published, latencies)
    trained = "bf16" if autocast_dtype(cfg.teacher.precision) else "fp32"
    env = environment("no" if cfg.onnx_teacher.path else trained)
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
