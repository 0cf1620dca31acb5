"""`distillation.md`, written from the report's JSON payload (`report.write_report`), one function per section."""

from __future__ import annotations

import os
from typing import Any

from distill_training.config import PipelineConfig
from distill_training.losses import CONTROL

Lines = list[str]


def markdown(cfg: PipelineConfig, payload: dict[str, Any]) -> str:
    sections = [
        _summary(cfg, payload),
        _targets(payload["targets"], cfg.profile),
        _frontier(payload["frontier"], payload["budget"]),
        _methods(payload["comparison"]),
        _budget(payload["budget"], payload["timings"]["seconds"]),
        _setup(cfg, payload["tuning"]),
        _timings(payload["timings"]),
    ]
    return "\n".join(line for section in sections for line in section)


def _by_role(payload: dict[str, Any], role: str) -> dict[str, Any]:
    return next(e for e in payload["frontier"] if e["exported"] and e["role"] == role)


def _summary(cfg: PipelineConfig, payload: dict[str, Any]) -> Lines:
    t, s, env = _by_role(payload, "teacher"), _by_role(payload, "student"), payload["environment"]
    rows = payload["models"]
    teacher_us = rows[0]["p50_us"]
    lines = [
        f"# Distillation report ({cfg.profile} profile)",
        "",
        f"The exported student `{s['name']}` ({s['architecture']}, method {s['method']}) keeps "
        f"{s['test_accuracy'] / t['test_accuracy']:.1%} of the served teacher `{t['name']}`'s test accuracy "
        f"({(s['test_accuracy'] - t['test_accuracy']) * 100:+.2f} pts) with {t['parameters'] / s['parameters']:.1f}x "
        f"fewer parameters and {t['latency_us'] / s['latency_us']:.1f}x lower batch-1 latency.",
        "",
        f"Measured {env['date']} on {env['cpu']}, {env['cores']} cores ({env['precision']} teacher training; "
        f"1-minute load average {env['load_1min']:.1f} at the end).",
        "",
        "| model | name | method | architecture | test accuracy (ONNX) | parameters | ONNX size | batch-1 p50 | p90 "
        "| speedup |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['label']} | `{r['name']}` | {r['method']} | {r['architecture']} | {r['accuracy']:.2%} | "
        f"{r['parameters']:,} | {r['size_bytes'] / 1024:,.0f} KiB | {r['p50_us']:,.1f} µs | {r['p90_us']:,.1f} µs | "
        f"{teacher_us / r['p50_us']:.1f}x |"
        for r in rows
    ]
    return [
        *lines,
        "",
        f"Test accuracy of the exported ONNX model on the whole test set ({cfg.data.data_dir}). Latency: "
        f"onnxruntime CPU, batch 1, {cfg.export.latency_threads} intra-op thread(s) for every model, "
        f"{cfg.export.latency_runs} runs each in interleaved rounds. The served repository holds the teacher and the "
        "student; the control (and an ensemble's members) are exported to the run directory for comparison.",
        "",
    ]


def _targets(targets: list[dict[str, Any]], profile: str) -> Lines:
    note = "" if profile == "default" else " (set for the default profile; this is a smaller run)"
    lines = [f"## Targets{note}", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |" for t in targets]
    return [*lines, ""]


def _limit(budget: dict[str, Any]) -> str:
    limit = budget["latency_limit_us"]
    return budget["latency_budget"] if limit is None else f"{budget['latency_budget']}: at most {limit:,.1f} µs"


def _frontier(frontier: list[dict[str, Any]], budget: dict[str, Any]) -> Lines:
    lines = [
        "## Accuracy-latency frontier",
        "",
        f"Every model the run measured. The exported student is the candidate most accurate on validation within "
        f"the latency budget ({_limit(budget)}), at its "
        "method's best seed; candidates train with the exported method on seed 0. Exported models in bold.",
        "",
        "| name | role | architecture | method | parameters | val accuracy | test accuracy | batch-1 p50 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in sorted(frontier, key=lambda e: e["latency_us"]):
        name = f"**{e['name']}**" if e["exported"] else e["name"]
        lines.append(
            f"| {name} | {e['role']} | {e['architecture']} | {e['method']} | {e['parameters']:,} | "
            f"{e['val_accuracy']:.2%} | {e['test_accuracy']:.2%} | {e['latency_us']:,.1f} µs |"
        )
    return [*lines, "", "![accuracy vs latency and parameters](distillation_frontier.png)", ""]


def _methods(comparison: dict[str, Any]) -> Lines:
    seeds, methods, versus = comparison["seeds"], comparison["methods"], comparison["versus_control"]
    control = methods[CONTROL]
    lines = [
        f"## Distillation methods against the label-only control ({seeds} seeds, candidate {comparison['candidate']})",
        "",
        "Same architecture, recipe and seeds (initialisation and batch order); only the loss, and for consistent "
        "teaching the views, differ. Test accuracy of each seed's best epoch on validation (PyTorch). Gap closed: "
        f"the fraction of the control-to-teacher gap (teacher {comparison['teacher_test_accuracy']:.2%}) a method "
        "closes.",
        "",
        "| method | test accuracy, mean ± std | vs control | ahead on | every seed above every control seed "
        "| gap closed |",
        "|---|---|---|---|---|---|",
        f"| {CONTROL} (control) | {control['mean']:.2%} ± {control['std'] * 100:.2f} | | | | |",
    ]
    for method, v in versus.items():
        m = methods[method]
        best = " (best)" if method == comparison["best_method"] else ""
        lines.append(
            f"| {method}{best} | {m['mean']:.2%} ± {m['std'] * 100:.2f} | {v['mean'] * 100:+.2f} ± "
            f"{v['std'] * 100:.2f} pts | {v['wins']}/{seeds} | {'yes' if v['every_above_every_control'] else 'no'} | "
            f"{v['gap_closed']:.0%} |"
        )
    names = list(methods)
    lines += ["", "| seed | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for seed in range(seeds):
        cells = [f"{methods[m]['test_accuracy'][seed]:.2%} (val {methods[m]['val_accuracy'][seed]:.2%})" for m in names]
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    return [*lines, "", "![methods per seed](distillation_seeds.png)", ""]


def _budget(budget: dict[str, Any], seconds: dict[str, float]) -> Lines:
    plan, students, speeds = budget["plan"], budget["final_students"], budget["speeds"]
    comparison = budget["comparison"]
    lines = ["## Time budget", ""]
    if speeds is None and budget["imported_teacher"]:
        lines.append("No time budget: the teacher was brought as an ONNX file, and its students ran the full recipe.")
    elif speeds is None:
        lines.append("No time budget (`--time-budget-min 0`): the full recipe ran.")
    else:
        lines += [
            f"Budget {budget['time_budget_min']:g} minutes. Measured first ({speeds['seconds']:.0f} s, 1-minute load "
            f"average {speeds['load_1min']:.1f}): a teacher member's epoch takes "
            + ", ".join(f"{s:.0f} s" for s in speeds["teacher_epoch_s"])
            + f" on one thread each (side by side), {speeds['teacher_alone_s']:.0f} s alone on "
            f"{speeds['teacher_alone_threads']} thread(s); a member's logits on one view of the training images "
            + ", ".join(f"{s:.1f} s" for s in speeds["teacher_forward_s"])
            + " (onnxruntime); a student epoch on one thread "
            + ", ".join(f"{spec} {s:.1f} s" for spec, s in speeds["student_epoch_s"].items())
            + f". {budget['reserve_s']:.0f} s are kept for the exports and the report.",
        ]
    teacher = (
        "- Teacher: not trained here."
        if budget["imported_teacher"]
        else f"- Teacher: {plan['members']} member(s), {plan['teacher_epochs']} epochs each planned, "
        f"{', '.join(str(e) for e in budget['teacher_epochs'])} trained (fitted to its deadline after every epoch)."
    )
    lines += [
        "",
        teacher,
        f"- Search: {students['epochs']} epochs, candidates {', '.join(students['candidates'])} (fitted again once "
        "the teacher was done).",
        f"- Comparison: {comparison['epochs']} epochs, {comparison['seeds']} seeds (fitted again once the search "
        "was done, from the chosen candidate's epoch time in it).",
        f"- What the budget cut: {'; '.join(budget['cuts']) if budget['cuts'] else 'nothing'}.",
        "",
    ]
    if speeds is not None:
        took = [seconds.get("teacher", 0.0) + seconds.get("logits", 0.0), seconds.get("students", 0.0)]
        lines += [
            "| phase | planned | took (in the run that built it) |",
            "|---|---|---|",
            f"| teacher and its logits | {plan['teacher_s'] / 60:.1f} min | {took[0] / 60:.1f} min |",
            f"| students: search and comparison | {students['estimate_s'] / 60:.1f} min (comparison refitted: "
            f"{comparison['estimate_s'] / 60:.1f} min) | {took[1] / 60:.1f} min |",
            "",
        ]
    return lines


def _setup(cfg: PipelineConfig, tuning: list[dict[str, float]]) -> Lines:
    t, s = cfg.teacher, cfg.student
    members = ", ".join(t.members) if t.members else t.architecture
    lines = [
        "## Setup",
        "",
        f"- Data: {cfg.data.val_size:,} images of train (at most {cfg.data.val_fraction:.0%} of it) held out for "
        "validation (every choice: epochs, seeds, candidates); the test set only for the numbers above.",
        f"- Teacher: {members} (width {t.width}, conv dense {t.hidden}, resnet blocks {t.blocks}, dropout "
        f"{t.dropout}); AdamW one-cycle (peak lr {t.lr}), batch {t.batch_size}"
        f"{', random flips and 2-pixel shifts' if t.augment else ''}. An ensemble averages its members' logits."
        if not cfg.onnx_teacher.path
        else f"- Teacher: `{cfg.onnx_teacher.path}`, an ONNX file brought as it is (not trained here), run in "
        "onnxruntime on the raw pixels of every view; its card records what it takes and its test accuracy.",
        f"- Students: AdamW one-cycle (peak lr {s.lr}), batch {s.batch_size}, on cached teacher logits of "
        f"{s.views} fixed views per image (the image, its mirror, random shifts and flips).",
        f"- kd (Hinton et al. 2015): {s.kd_weight} · T² · KL(teacher_T || student_T) + {1 - s.kd_weight:g} · CE, "
        f"T = {s.temperature:g}, on the image and its mirror. dkd (Zhao et al. 2022): CE + T² (α TCKD + β NCKD), "
        f"T = {s.dkd_temperature:g}, α = {s.dkd_alpha:g}, β = {s.dkd_beta:g}, on the image and its mirror. "
        f"consistent (Beyer et al. 2022): T² · KL at T = {s.consistent_temperature:g}, no labels, on every view. "
        "Control: cross-entropy only, on the image and its mirror.",
    ]
    if tuning:
        lines += [
            "",
            "KD temperature and weight on the validation split (seed 0; `python -m distill_training tune`):",
            "",
            "| T | weight | val accuracy |",
            "|---|---|---|",
        ]
        lines += [f"| {r['temperature']:g} | {r['kd_weight']:g} | {r['val_accuracy']:.2%} |" for r in tuning]
    return [*lines, ""]


def _timings(timings: dict[str, dict[str, float]]) -> Lines:
    seconds, loads = timings["seconds"], timings.get("load_1min", {})
    lines = ["## Step wall times", "", "| step | minutes | 1-min load average at its end |", "|---|---|---|"]
    lines += [f"| {step} | {sec / 60:.1f} | {_load(loads, step)} |" for step, sec in seconds.items()]
    return [
        *lines,
        f"| **total** | {sum(seconds.values()) / 60:.1f} | |",
        "",
        "Each step's time is from the run that built it (later runs skip up-to-date steps). A load average "
        f"above {os.cpu_count()} means the cores were shared with other jobs and times are inflated.",
        "",
    ]


def _load(loads: dict[str, float], step: str) -> str:
    return f"{loads[step]:.1f}" if step in loads else "not recorded"
