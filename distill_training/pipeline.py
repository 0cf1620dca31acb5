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
from distill_training.report import Outcome, write_report
from distill_training.samples import write_samples
from distill_training.steps import (
    compare,
    comparison_of,
    run_plan,
    search,
    student,
    student_plan,
    teachers,
    trained_epochs,
)
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


@dataclass(frozen=True)
class Selected:
    result: StudentResult
    epochs: int
    record: dict[str, Any]  # what the card records of the choice


def _best_on_validation(
    ctx: Context, comparison: dict[str, Any], method: str, search_run: tuple[StudentResult, int] | None = None
) -> Selected:
    """Of the comparison's seeds of `method`, and of the search's run of the same candidate (`search_run`, with
    its epochs: its schedule may be longer), the most accurate on validation; the comparison's on a tie."""
    spec, stats, epochs = comparison["candidate"], comparison["methods"][method], comparison["student"]["epochs"]
    seed = stats["exported_seed"]
    options = [(student(ctx, (spec, method, seed, epochs)), epochs)]
    rule = f"best validation of seeds 0-{comparison['seeds'] - 1} of candidate {spec} ({epochs} epochs)"
    if search_run is not None and search_run[1] != epochs:
        options.append(search_run)
        rule += f" and of its search run ({search_run[1]} epochs)"
    result, chosen_epochs = max(options, key=lambda option: option[0].val_accuracy)
    record = {"seed": result.seed, "epochs": chosen_epochs, "val_accuracy": result.val_accuracy, "rule": rule}
    return Selected(result, chosen_epochs, record)


def build(ctx: Context, repo: Path) -> Built:
    """Everything but the report: the served repository, the control, the comparison and the frontier."""
    cfg = ctx.cfg
    run_plan(ctx)
    published_teachers = teachers(ctx)
    searched = search(ctx)
    configs = {spec: student_config(cfg, spec, student_plan(ctx).epochs) for spec in searched}
    candidates = publish_candidates(ctx, searched, configs)
    published = {pub.card.name: pub for pub in (published_teachers.served, *published_teachers.members)}
    published |= candidates
    latency = measure(
        ctx,
        {name: pub.model_file for name, pub in published.items()},
        {name: pub.card.input for name, pub in published.items()},
    )
    teacher_us = latency[published_teachers.served.card.name].p50_us
    choice = choose_candidate(ctx, searched, latency, teacher_us)
    comparison = compare(ctx, choice.spec, published_teachers.served.record.test_accuracy)
    search_epochs = student_plan(ctx).epochs
    best = _best_on_validation(ctx, comparison, cfg.student.method, (searched[choice.spec], search_epochs))
    selected = best.record | {"latency_budget": choice.rule, "latency_limit_us": choice.limit_json}
    exported = publish_student(
        ctx,
        best.result,
        student_config(cfg, choice.spec, best.epochs),
        choice.spec,
        repo=exported_dir(ctx),
        name=cfg.student.name,
        selected=selected,
    )
    best_control = _best_on_validation(ctx, comparison, CONTROL)
    control = publish_student(
        ctx,
        best_control.result,
        student_config(cfg, choice.spec, best_control.epochs),
        choice.spec,
        repo=exported_dir(ctx),
        name=cfg.student.control_name,
        selected=best_control.record,
    )
    served = Teachers(install(published_teachers.served, repo), published_teachers.members)
    student_pub = install(exported, repo)
    write_samples(ctx.data, repo, cfg.data.data_dir)  # real test images and their labels, for people to try
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
    trained = "bf16" if autocast_dtype(ctx.cfg.teacher.precision) else "fp32"
    precision = "no" if ctx.cfg.onnx_teacher.path else trained  # a teacher brought as an ONNX file: not trained
    path = write_report(
        report_dir or Path(ctx.cfg.export.report_dir),
        cfg=ctx.cfg,
        built=built,
        outcome=Outcome(run_plan(ctx), student_plan(ctx), comparison_of(ctx, built.choice.spec), trained_epochs(ctx)),
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
