"""The training steps, each of which first makes sure its inputs exist (earlier steps skip when up to date):
the plan (speed, latency, budget), the teacher's members, its logits on the students' views, the search (every
candidate on seed 0), the comparison (every method and the control on every seed of one candidate) and the
KD grid. Each takes the invocation's `Context` (config, data, plan, step timings); `pipeline` composes them.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from distill_training import distributed
from distill_training.budget import ComparisonPlan, StudentPlan
from distill_training.comparison import summarise
from distill_training.config import PipelineConfig, TeacherConfig, to_dict
from distill_training.context import Context, load_data, timed
from distill_training.logits_cache import Views, cached_views
from distill_training.losses import CONTROL
from distill_training.onnx_teacher_card import publish_onnx_teacher
from distill_training.onnx_views import ImportedTeacher
from distill_training.planning import (
    RunPlan,
    check_latency_budget,
    comparison_plan,
    final_students,
    make_plan,
    save_comparison,
    save_students,
    saved_comparison,
    saved_students,
    student_config,
    teacher_deadline,
    teacher_members,
)
from distill_training.publishing import exported_dir, publish_teacher
from distill_training.search import folder_name
from distill_training.sharded_logits import sharded_views
from distill_training.staleness import digest, read_meta
from distill_training.teachers import ExportedTeacher, Teachers
from distill_training.train import StudentResult, train_student, train_teacher, trained_student, trained_teacher
from modelrepo.host import available_cores

Job = tuple[str, str, int, int]  # (candidate spec, method, seed, epochs)


def run_plan(ctx: Context) -> RunPlan:
    """The plan (measured and fitted once, then loaded), and the latency budget checked against it."""
    if ctx.run_plan is None:
        world = distributed.current()  # under torchrun, rank 0 measures and plans for every rank
        plan = partial(make_plan, ctx.cfg, ctx.data, ctx.started, ctx.data_load_s)
        ctx.run_plan = timed(ctx, "plan", lambda: distributed.from_main(world, plan))
        check_latency_budget(ctx.cfg, ctx.run_plan)
    return ctx.run_plan


def _teacher_in_worker(
    tc: TeacherConfig, cfg: PipelineConfig, out_dir: Path, threads: int, deadline: float | None
) -> None:
    """One member in a worker process on its share of the cores (it loads its own data)."""
    torch.set_num_threads(threads)
    train_teacher(tc, cfg.data, load_data(cfg), out_dir, progress=False, deadline=deadline)


def teacher_weights(ctx: Context) -> list[Path]:
    """Each member's weights (resumable). Members not up to date train side by side, each on its share of the
    cores: on cores shared with other jobs, one net's ops spread over several threads wait for the slowest."""
    plan = run_plan(ctx).plan
    members = teacher_members(ctx.cfg, plan)
    dirs = [ctx.run_dir / "teachers" / f"member{i}" for i in range(len(members))]
    pairs = list(zip(members, dirs, strict=True))
    todo = [(tc, d) for tc, d in pairs if trained_teacher(tc, ctx.cfg.data, ctx.data, d) is None]
    processes = min(len(todo), available_cores())
    world = distributed.current()
    if world.distributed:  # every rank trains each member in turn, on its share of the data
        deadline = teacher_deadline(run_plan(ctx))
        on = partial(train_teacher, deadline=deadline, world=world, progress=world.main)
        return timed(ctx, "teacher", lambda: [on(tc, ctx.cfg.data, ctx.data, d) for tc, d in pairs])

    def train() -> list[Path]:
        deadline = teacher_deadline(run_plan(ctx))
        if processes > 1:
            with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
                threads = max(1, available_cores() // processes)
                jobs = [pool.submit(_teacher_in_worker, tc, ctx.cfg, d, threads, deadline) for tc, d in todo]
                for job in as_completed(jobs):
                    job.result()
        every_core = torch.get_num_threads()
        torch.set_num_threads(plan.teacher_threads or every_core)  # a lone member: as the plan measured best
        try:
            return [train_teacher(tc, ctx.cfg.data, ctx.data, d, deadline=deadline) for tc, d in pairs]
        finally:
            torch.set_num_threads(every_core)

    return timed(ctx, "teacher", train)


def trained_epochs(ctx: Context) -> list[int]:
    """The epochs each member trained: fewer than planned where it fell behind its deadline (none for a teacher
    brought as an ONNX file)."""
    if ctx.cfg.onnx_teacher.path:
        return []
    planned = run_plan(ctx).plan.teacher_epochs
    return [int(read_meta(w.parent).get("epochs", planned)) for w in teacher_weights(ctx)]


def teachers(ctx: Context) -> Teachers:
    """The served teacher (and an ensemble's members) trained and published into the run directory."""
    if ctx.teachers is None and ctx.cfg.onnx_teacher.path:
        student_views(ctx)  # checks the teacher on the data and finds what its card records
        published = publish_onnx_teacher(ctx.cfg, ctx.data, exported_dir(ctx), ctx.imported_facts)
        ctx.teachers = Teachers(published, [])
    if ctx.teachers is None:
        members = teacher_members(ctx.cfg, run_plan(ctx).plan)
        ctx.teachers = publish_teacher(ctx, members, teacher_weights(ctx))
    return ctx.teachers


def student_views(ctx: Context) -> Views:
    """The students' views, scored by the served teacher's ONNX export, or by the teacher brought as an ONNX
    file (whose facts, for its card, are kept in the context)."""
    if ctx.views is None and ctx.cfg.onnx_teacher.path:
        imported = ImportedTeacher(ctx.cfg, ctx.data)
        ctx.views = timed(ctx, "logits", lambda: cached_views(ctx.cfg, ctx.data, imported, ctx.run_dir / "logits"))
        ctx.imported_facts = imported.facts(ctx.views, ctx.data.labels)
    if ctx.views is None and distributed.current().distributed:
        teacher_file = teachers(ctx).served.model_file
        ctx.views = timed(ctx, "logits", lambda: _sharded_views(ctx, teacher_file))
    if ctx.views is None:
        served = ExportedTeacher(teachers(ctx).served.model_file)
        ctx.views = timed(ctx, "logits", lambda: cached_views(ctx.cfg, ctx.data, served, ctx.run_dir / "logits"))
    return ctx.views


def _sharded_views(ctx: Context, teacher_file: Path | None) -> Views | None:
    """The logits computed by every rank on its block of the images, merged on rank 0; then the ranks part:
    what follows the logits (the students, the export, the report) is rank 0's alone."""
    try:
        return sharded_views(ctx.cfg, ctx.data, distributed.current(), teacher_file, ctx.run_dir / "logits")
    finally:
        distributed.stop()


# The steps whose inputs include the teacher's logits (`student_views`): the ranks of a torchrun job join in.
AFTER_LOGITS = ("logits", "student", "search", "compare", "tune", "export", "report", "pipeline")


def follow(ctx: Context, step: str) -> None:
    """What a rank other than 0 does of `step` under torchrun: its share of the teacher's training and of its
    logits, in the order rank 0 reaches them (the plan comes from rank 0)."""
    run_plan(ctx)
    if ctx.cfg.onnx_teacher.path:
        return  # a teacher brought as an ONNX file: nothing is trained here, rank 0 scores its views alone
    if step != "plan":
        teacher_weights(ctx)
    if step in AFTER_LOGITS:
        _sharded_views(ctx, None)


def student_plan(ctx: Context) -> StudentPlan:
    """The search's epochs and candidates, fitted to the time left once the teacher and its logits are done
    (saved: a later invocation keeps them)."""
    if ctx.students is None:
        student_views(ctx)
        students = saved_students(ctx.cfg)
        if students is None:
            elapsed = time.perf_counter() - ctx.started
            students = final_students(ctx.cfg, run_plan(ctx), elapsed_s=elapsed)
            save_students(ctx.cfg, students)
        ctx.students = students
    return ctx.students


def _student_dir(ctx: Context, job: Job) -> Path:
    spec, method, seed, epochs = job
    return ctx.run_dir / "students" / f"{folder_name(spec)}-{method}-seed{seed}-e{epochs}"


def student(ctx: Context, job: Job, *, progress: bool = True) -> StudentResult:
    views = student_views(ctx)
    spec, method, seed, epochs = job
    cfg, out = student_config(ctx.cfg, spec, epochs), _student_dir(ctx, job)
    return timed(
        ctx,
        "students",
        lambda: train_student(cfg, ctx.data, views, method=method, seed=seed, out_dir=out, progress=progress),
    )


def _student_in_worker(cfg: PipelineConfig, plan: RunPlan, job: Job) -> None:
    """One student in a worker process, which loads its own data and cached views."""
    ctx = Context(cfg, load_data(cfg), {}, run_plan=plan)
    student(ctx, job, progress=False)


def train_students(ctx: Context, jobs: list[Job]) -> list[StudentResult]:
    """The students of `jobs`. Those not up to date train side by side, one process per core: each trains on
    one thread (`student.threads`), so the results are those of training them one after another."""
    views = student_views(ctx)  # the logits are cached before any worker reads them

    def done(job: Job) -> bool:
        spec, method, seed, epochs = job
        cfg, out = student_config(ctx.cfg, spec, epochs), _student_dir(ctx, job)
        return trained_student(cfg, method=method, seed=seed, logits_key=views.key, out_dir=out) is not None

    todo = [job for job in jobs if not done(job)]
    processes = min(len(todo), available_cores())
    if processes > 1:

        def run() -> None:
            spawn = multiprocessing.get_context("spawn")  # fork is unsafe after torch's thread pools started
            with ProcessPoolExecutor(processes, mp_context=spawn) as pool:
                futures = [pool.submit(_student_in_worker, ctx.cfg, run_plan(ctx), job) for job in todo]
                for future in tqdm(as_completed(futures), total=len(futures), desc=f"students ({processes} processes)"):
                    future.result()

        timed(ctx, "students", run)
    return [student(ctx, job) for job in jobs]


def search(ctx: Context) -> dict[str, StudentResult]:
    """Every candidate the plan keeps, trained with `student.method` on seed 0."""
    plan = student_plan(ctx)
    results = train_students(ctx, [(spec, ctx.cfg.student.method, 0, plan.epochs) for spec in plan.candidates])
    return dict(zip(plan.candidates, results, strict=True))


def compared_methods(cfg: PipelineConfig) -> list[str]:
    """The exported student's method, the others compared, and the control last."""
    methods = [cfg.student.method, *cfg.student.methods]
    return [m for i, m in enumerate(methods) if m not in methods[:i] and m != CONTROL] + [CONTROL]


def comparison_of(ctx: Context, spec: str) -> ComparisonPlan:
    """The comparison's epochs and seeds for candidate `spec`, fitted to the time left from that candidate's
    epoch time in the search (saved: a later invocation keeps them)."""
    saved = saved_comparison(ctx.cfg, spec)
    if saved is not None:
        return saved
    epochs, speeds = student_plan(ctx).epochs, run_plan(ctx).speeds
    searched = student(ctx, (spec, ctx.cfg.student.method, 0, epochs))  # trained by the search, or now
    # Alone, as measured before any training, unless the search ran slower (a busier machine); the search's run
    # may have shared the cores for part of its time, so it is taken as alone-or-slower.
    calibrated = speeds.student_epoch_s.get(spec, 0.0) if speeds is not None else 0.0
    epoch_s = max(searched.seconds / epochs, calibrated)
    plan = comparison_plan(ctx.cfg, run_plan(ctx), epoch_s=epoch_s, elapsed_s=time.perf_counter() - ctx.started)
    save_comparison(ctx.cfg, spec, plan)
    return plan


def compare(ctx: Context, spec: str, teacher_accuracy: float) -> dict[str, Any]:
    """Every method and the control on seeds 0..seeds-1 of one candidate; saved in `<run_dir>/comparison.json`."""
    plan, methods = comparison_of(ctx, spec), compared_methods(ctx.cfg)
    jobs = [(spec, m, s, plan.epochs) for m in methods for s in range(plan.seeds)]
    trained = iter(train_students(ctx, jobs))
    runs = {m: [next(trained) for _ in range(plan.seeds)] for m in methods}
    cfg = student_config(ctx.cfg, spec, plan.epochs)
    summary = summarise(runs, candidate=spec, teacher_accuracy=teacher_accuracy, student=to_dict(cfg))
    (ctx.run_dir / "comparison.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


@dataclass(frozen=True)
class Tuned:
    temperature: float
    kd_weight: float
    val_accuracy: float


def tune(ctx: Context, spec: str, temperatures: list[float], weights: list[float]) -> list[Tuned]:
    """Grid of KD temperature and weight for one candidate, seed 0, ranked by validation accuracy (the test set
    stays unseen)."""
    views = student_views(ctx)
    rows = []
    for temperature in temperatures:
        for weight in weights:
            base = replace(ctx.cfg.student, temperature=temperature, kd_weight=weight)
            cfg = student_config(replace(ctx.cfg, student=base), spec, student_plan(ctx).epochs)
            out = (
                ctx.run_dir / "tuning" / f"{folder_name(spec)}-T{temperature:g}-w{weight:g}-{digest(to_dict(cfg))[:8]}"
            )
            result = train_student(cfg, ctx.data, views, method="kd", seed=0, out_dir=out)
            rows.append(Tuned(temperature, weight, result.val_accuracy))
    rows.sort(key=lambda r: -r.val_accuracy)
    (ctx.run_dir / "tuning.json").write_text(json.dumps([r.__dict__ for r in rows], indent=2) + "\n")
    return rows
