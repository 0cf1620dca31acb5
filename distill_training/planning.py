"""The plan of a run: this machine's speed and the nets' latency, measured once, and the recipe fitted to the
time budget (`budget`). Saved in `<run_dir>/plan.json`, so a later invocation with the same settings follows the
same plan and finds what the first one built up to date; the latency budget is checked on every invocation,
against latencies measured before any training, so an impossible one fails in seconds.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from distill_training.budget import (
    ComparisonPlan,
    Plan,
    Recipe,
    StudentPlan,
    fit_comparison,
    fit_plan,
    fit_students,
    full_plan,
)
from distill_training.config import PipelineConfig, StudentConfig, TeacherConfig, to_dict
from distill_training.data import Dataset
from distill_training.latency import measure_latency
from distill_training.logits_cache import view_count
from distill_training.losses import CONTROL
from distill_training.onnx_teacher import open_teacher
from distill_training.search import Scored, candidate_config, candidate_specs, latency_limit, within_budget
from distill_training.speed import GraphLatency, Speeds, calibrate, graph_latencies
from distill_training.staleness import digest
from distill_training.teachers import member_configs, served_model
from distill_training.train import build_student, build_teacher
from modelrepo.host import available_cores

PLAN = "plan.json"
TEACHER = "teacher"  # the served teacher's key in `RunPlan.latency_us`
LATENCY_RUNS = 200  # per net, for the estimate before training
TEACHER_SLACK = 0.1  # how far the teacher may run past its estimate before it is shortened
EXPORT_S = 2.5  # publishing one model: the dynamo export, validation and test accuracy (2-4 s on 2 cores)


@dataclass(frozen=True)
class RunPlan:
    plan: Plan
    speeds: Speeds | None  # None without a time budget
    latency_us: dict[str, float]  # estimated before training: the served teacher and each candidate
    budget_s: float  # 0: none
    reserve_s: float  # kept for the exports and the report
    available_s: float  # for the teacher and the students, when the plan was made


def recipe_of(cfg: PipelineConfig) -> Recipe:
    s = cfg.student
    methods = {s.method, *s.methods} - {CONTROL}
    return Recipe(
        members=len(member_configs(cfg.teacher)),
        teacher_epochs=cfg.teacher.epochs,
        teacher_min_epochs=min(cfg.teacher.min_epochs, cfg.teacher.epochs),
        views=view_count(cfg),
        student_epochs=s.epochs,
        student_min_epochs=min(s.min_epochs, s.epochs),
        seeds=s.seeds,
        methods=len(methods),
        candidates=tuple(candidate_specs(s)),
    )


def teacher_members(cfg: PipelineConfig, plan: Plan) -> list[TeacherConfig]:
    """The members the plan trains, each for the plan's epochs."""
    return member_configs(replace(cfg.teacher, epochs=plan.teacher_epochs), plan.members)


def student_config(cfg: PipelineConfig, spec: str, epochs: int) -> StudentConfig:
    return candidate_config(replace(cfg.student, epochs=epochs), spec)


def _plan_key(cfg: PipelineConfig) -> str:
    """Everything the plan depends on: not the latency budget (checked on every invocation) or names."""
    tree = to_dict(cfg)
    for section, field in (("budget", "latency_budget_us"), ("budget", "min_speedup"), ("export", "report_dir")):
        tree[section].pop(field)
    return digest(tree)


def _estimate_latency(cfg: PipelineConfig, data: Dataset, members: int) -> GraphLatency:
    """Batch-1 latency of the untrained served teacher (`members` of them) and candidates, the seconds one
    export takes, and the teacher's batch throughput (its logits are computed by onnxruntime)."""
    imported = cfg.onnx_teacher.path
    nets = (
        {}
        if imported
        else {TEACHER: served_model([build_teacher(c, data) for c in member_configs(cfg.teacher, members)])}
    )
    for spec in candidate_specs(cfg.student):
        nets[spec] = build_student(candidate_config(cfg.student, spec), data)
    threads = cfg.export.latency_threads
    measured = graph_latencies(
        nets, data.image_shape, opset=cfg.export.opset, threads=threads, runs=LATENCY_RUNS, batched=next(iter(nets))
    )
    if not imported:
        return measured
    teacher = open_teacher(cfg.onnx_teacher, cfg.data)  # measured as it is, fed as its card will say
    times = measure_latency(
        {TEACHER: teacher.path}, threads=threads, runs=LATENCY_RUNS, inputs={TEACHER: teacher.input}
    )
    return replace(measured, latency_us={TEACHER: float(np.percentile(times[TEACHER], 50)) * 1e6} | measured.latency_us)


def _reserve_s(cfg: PipelineConfig, latency_us: dict[str, float], members: int) -> float:
    """The exports (each also validated and scored), the latency runs and the report."""
    exports = len(latency_us) + (members if members > 1 else 0) + 2  # ... + the student and the control
    teacher_us = latency_us[TEACHER] * (1 + members) / 2  # an ensemble's members are measured too
    latency_runs = cfg.export.latency_runs * (sum(latency_us.values()) + teacher_us) * 1e-6
    return EXPORT_S * exports + latency_runs + 10.0


def make_plan(cfg: PipelineConfig, data: Dataset, started: float, data_load_s: float) -> RunPlan:
    """Measure, fit and save the plan (or load the one saved with the same settings); `data_load_s` is what
    loading the data took, as each worker process will."""
    path = Path(cfg.run_dir) / PLAN
    key = _plan_key(cfg)
    saved = _load(path, key)
    if saved is not None:
        return saved
    recipe = recipe_of(cfg)
    # A teacher brought as an ONNX file is not trained here: its students get the full recipe.
    budget_s = 0.0 if cfg.onnx_teacher.path else cfg.budget.time_budget_min * 60
    plan, speeds = full_plan(recipe), None
    if budget_s > 0:
        members = member_configs(cfg.teacher)
        candidates = {spec: candidate_config(cfg.student, spec) for spec in recipe.candidates}
        calls = cfg.budget.calibration_steps
        speeds = calibrate(members, candidates, data, calls=calls, cores=available_cores(), data_load_s=data_load_s)
        plan = fit_plan(speeds, recipe, available_cores(), budget_s, teacher_share=cfg.budget.teacher_share)
    measured = _estimate_latency(cfg, data, plan.members)
    reserve = _reserve_s(cfg, measured.latency_us, plan.members)
    available = max(0.0, budget_s - (time.perf_counter() - started) - reserve)
    if speeds is not None:
        # Each member's share of the served graph's onnxruntime pass over the training images.
        per_member = measured.batch_s * len(data.train_x) / plan.members
        speeds = replace(speeds, teacher_forward_s=[per_member] * len(speeds.teacher_forward_s))
        plan = fit_plan(speeds, recipe, available_cores(), available, teacher_share=cfg.budget.teacher_share)
    run_plan = RunPlan(plan, speeds, measured.latency_us, budget_s, reserve, available)
    _save(path, key, run_plan)
    return run_plan


def check_latency_budget(cfg: PipelineConfig, run_plan: RunPlan) -> None:
    """A LatencyBudgetError, before any training, when no candidate can meet the latency budget."""
    teacher = run_plan.latency_us[TEACHER]
    limit, rule = latency_limit(cfg.budget.latency_budget_us, cfg.budget.min_speedup, teacher)
    scored = [Scored(spec, 0.0, us) for spec, us in run_plan.latency_us.items() if spec != TEACHER]
    within_budget(scored, limit, rule)


def teacher_deadline(run_plan: RunPlan) -> float | None:
    """When (`time.time()`) the teacher's training must end, from now: its estimate with `TEACHER_SLACK` to
    spare; None without a time budget."""
    if run_plan.speeds is None:
        return None
    return time.time() + run_plan.plan.teacher_train_s * (1 + TEACHER_SLACK)


def left_s(run_plan: RunPlan, elapsed_s: float) -> float:
    """What is left of the time budget, less the reserve for the exports and the report."""
    return max(0.0, run_plan.budget_s - elapsed_s - run_plan.reserve_s)


def final_students(cfg: PipelineConfig, run_plan: RunPlan, *, elapsed_s: float) -> StudentPlan:
    """The students' plan fitted again to the time actually left once the teacher and its logits are done."""
    if run_plan.speeds is None:
        return run_plan.plan.students
    return fit_students(run_plan.speeds, recipe_of(cfg), available_cores(), left_s(run_plan, elapsed_s))


def comparison_plan(cfg: PipelineConfig, run_plan: RunPlan, *, epoch_s: float, elapsed_s: float) -> ComparisonPlan:
    """The comparison's epochs and seeds, from the chosen candidate's epoch time in the search and the time left."""
    recipe = recipe_of(cfg)
    if run_plan.speeds is None:
        return ComparisonPlan(recipe.student_epochs, recipe.seeds, 0.0, ())
    return fit_comparison(run_plan.speeds, epoch_s, recipe, available_cores(), left_s(run_plan, elapsed_s))


def _saved(cfg: PipelineConfig) -> dict[str, Any]:
    try:
        saved: dict[str, Any] = json.loads((Path(cfg.run_dir) / PLAN).read_text())
    except (OSError, ValueError):
        return {}
    return saved if saved.get("key") == _plan_key(cfg) else {}


def _save_part(cfg: PipelineConfig, field: str, value: Any) -> None:
    path = Path(cfg.run_dir) / PLAN
    saved = json.loads(path.read_text())
    saved[field] = value
    path.write_text(json.dumps(saved, indent=2) + "\n")


def save_students(cfg: PipelineConfig, students: StudentPlan) -> None:
    _save_part(cfg, "final_students", dataclasses.asdict(students))


def saved_students(cfg: PipelineConfig) -> StudentPlan | None:
    """The students' final plan of an earlier invocation with the same settings."""
    tree = _saved(cfg).get("final_students")
    return _student_plan(tree) if tree else None


def save_comparison(cfg: PipelineConfig, spec: str, plan: ComparisonPlan) -> None:
    _save_part(cfg, "comparison", _saved(cfg).get("comparison", {}) | {spec: dataclasses.asdict(plan)})


def saved_comparison(cfg: PipelineConfig, spec: str) -> ComparisonPlan | None:
    """The comparison plan of an earlier invocation with the same settings, for this candidate."""
    tree = _saved(cfg).get("comparison", {}).get(spec)
    return ComparisonPlan(**(tree | {"cuts": tuple(tree["cuts"])})) if tree else None


def _student_plan(tree: dict[str, Any]) -> StudentPlan:
    return StudentPlan(**(tree | {"candidates": tuple(tree["candidates"]), "cuts": tuple(tree["cuts"])}))


def _save(path: Path, key: str, run_plan: RunPlan) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tree = {"key": key, **dataclasses.asdict(run_plan)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(tree, indent=2) + "\n")
    tmp.replace(path)


def _load(path: Path, key: str) -> RunPlan | None:
    try:
        tree = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if tree.get("key") != key:
        return None
    plan = tree["plan"]
    return RunPlan(
        plan=Plan(**(plan | {"students": _student_plan(plan["students"]), "cuts": tuple(plan["cuts"])})),
        speeds=Speeds(**tree["speeds"]) if tree["speeds"] else None,
        latency_us=tree["latency_us"],
        budget_s=tree["budget_s"],
        reserve_s=tree["reserve_s"],
        available_s=tree["available_s"],
    )
