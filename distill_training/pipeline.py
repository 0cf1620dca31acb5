"""The pipeline, composed of the steps (`steps`, `publishing`): what `export`, `report` and `pipeline` run.

plan -> teacher (members, published as one ONNX model) -> its logits on the students' views -> search ->
publish every candidate -> measure latency -> choose the candidate (best on validation within the latency
budget) -> compare the methods and the control on it -> publish the student (its method's best seed) and the
control -> install the teacher and the student into the served repository -> frontier -> report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill_training.context import Context, save_timings
from distill_training.export import Published
from distill_training.frontier import Entry, published_entry, seed_entries
from distill_training.losses import CONTROL
from distill_training.planning import student_config
from distill_training.publishing import (
    Choice,
    Latency,
    candidate_name,
    choose_candidate,
    exported_dir,
    install,
    measure,
    publish_candidates,
    publish_student,
)
from distill_training.report import write_report
from distill_training.steps import compare, comparison_of, run_plan, search, student, student_plan, teachers
from distill_training.teachers import Teachers
from distill_training.train import StudentResult, autocast_dtype


@dataclass(frozen=True)
class Built:
    teachers: Teachers
    searched: dict[str, StudentResult]  # seed 0 of every candidate, by spec
    choice: Choice
    comparison: dict[str, Any]
    student: Published  # in the served repository
    control: Published  # in the run directory
    latency: dict[str, Latency]  # by card name (teacher, members) and by candidate spec
    frontier: list[Entry]


def _exported_seed(ctx: Context, comparison: dict[str, Any], method: str) -> tuple[StudentResult, dict[str, Any]]:
    spec, stats = comparison["candidate"], comparison["methods"][method]
    seed = stats["exported_seed"]
    rule = f"best validation of seeds 0-{comparison['seeds'] - 1} of candidate {spec}"
    selected = {"seed": seed, "val_accuracy": stats["val_accuracy"][seed], "rule": rule}
    return student(ctx, (spec, method, seed, comparison["student"]["epochs"])), selected


def build(ctx: Context, repo: Path) -> Built:
    """Everything but the report: the served repository, the control, the comparison and the frontier."""
    cfg = ctx.cfg
    run_plan(ctx)
    published_teachers = teachers(ctx)
    searched = search(ctx)
    configs = {spec: student_config(cfg, spec, student_plan(ctx).epochs) for spec in searched}
    candidates = publish_candidates(ctx, searched, configs)
    files = {pub.card.name: pub.model_file for pub in (published_teachers.served, *published_teachers.members)}
    latency = measure(ctx, files | {spec: pub.model_file for spec, pub in candidates.items()})
    teacher_us = latency[published_teachers.served.card.name].p50_us
    choice = choose_candidate(ctx, searched, latency, teacher_us)
    comparison = compare(ctx, choice.spec, published_teachers.served.record.test_accuracy)
    result, selected = _exported_seed(ctx, comparison, cfg.student.method)
    selected |= {"latency_budget": choice.rule, "latency_limit_us": choice.limit_us}
    chosen = student_config(cfg, choice.spec, comparison["student"]["epochs"])
    exported = publish_student(
        ctx, result, chosen, choice.spec, repo=exported_dir(ctx), name=cfg.student.name, selected=selected
    )
    control_result, control_selected = _exported_seed(ctx, comparison, CONTROL)
    control = publish_student(
        ctx,
        control_result,
        chosen,
        choice.spec,
        repo=exported_dir(ctx),
        name=cfg.student.control_name,
        selected=control_selected,
    )
    served = Teachers(install(published_teachers.served, repo), published_teachers.members)
    student_pub = install(exported, repo)
    frontier = _frontier(ctx, served, candidates, comparison, student_pub, control, latency, choice.spec)
    return Built(served, searched, choice, comparison, student_pub, control, latency, frontier)


def _frontier(
    ctx: Context,
    teachers: Teachers,
    candidates: dict[str, Published],
    comparison: dict[str, Any],
    student_pub: Published,
    control: Published,
    latency: dict[str, Latency],
    chosen: str,
) -> list[Entry]:
    served = teachers.served
    entries = [
        published_entry(served, "teacher", served.record.architecture, latency[served.card.name].p50_us, exported=True)
    ]
    entries += [
        published_entry(m, "member", m.record.architecture, latency[m.card.name].p50_us, exported=False)
        for m in teachers.members
    ]
    training = student_pub.record.config["training"]
    same_as_candidate = training["selected"]["seed"] == 0 and training["student_epochs"] == student_plan(ctx).epochs
    for spec, pub in candidates.items():
        if not (spec == chosen and same_as_candidate):
            entries.append(published_entry(pub, "candidate", spec, latency[spec].p50_us, exported=False))
    chosen_us = latency[chosen].p50_us
    entries += seed_entries(
        comparison,
        name=candidate_name(ctx, chosen),
        parameters=student_pub.record.parameters,
        latency_us=chosen_us,
        skip={ctx.cfg.student.method, CONTROL},
    )
    entries.append(published_entry(student_pub, "student", chosen, chosen_us, exported=True))
    entries.append(published_entry(control, "control", chosen, chosen_us, exported=False))
    return entries


@dataclass(frozen=True)
class Report:
    path: Path  # distillation.md; the JSON and the plots lie next to it
    built: Built


def report(ctx: Context, repo: Path, report_dir: Path | None = None) -> Report:
    """Build what is not up to date, then write the report."""
    built = build(ctx, repo)
    precision = "bf16" if autocast_dtype(ctx.cfg.teacher.precision) else "fp32"
    path = write_report(
        report_dir or Path(ctx.cfg.export.report_dir),
        cfg=ctx.cfg,
        built=built,
        run_plan=run_plan(ctx),
        students=student_plan(ctx),
        comparison=comparison_of(ctx, built.choice.spec),
        timings=save_timings(ctx),
        precision=precision,
    )
    return Report(path, built)


@dataclass(frozen=True)
class PipelineRun:
    report: Report
    seconds: float  # this invocation's wall time


def run_pipeline(ctx: Context, repo: Path, report_dir: Path | None = None) -> PipelineRun:
    """Every step: plan, teacher, logits, search, latency, comparison, export, report."""
    written = report(ctx, repo, report_dir)
    return PipelineRun(written, time.perf_counter() - ctx.started)
