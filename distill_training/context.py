"""What the steps of one invocation share (`Context`: the config, the data loaded once, the students' views
built once) and the wall time of each step, saved in `<run_dir>/timings.json` for the report."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from distill_training.budget import StudentPlan
from distill_training.config import PipelineConfig, lookup, save_config
from distill_training.data import Dataset, load_dataset
from distill_training.distill import configured
from distill_training.logits_cache import Views
from distill_training.losses import LOSSES
from distill_training.nets import TEACHERS
from distill_training.planning import RunPlan
from distill_training.search import candidate_specs
from distill_training.teachers import Teachers, member_configs

T = TypeVar("T")
TIMINGS = "timings.json"
CACHED_SECONDS = 2.0  # a step that took less than this found its outputs up to date


@dataclass
class Context:
    """What the steps share in one invocation: the config, the data (loaded once), step timings, and what is
    worked out once per invocation (the plan, the students' views)."""

    cfg: PipelineConfig
    data: Dataset
    timings: dict[str, float]
    loads: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)  # the time budget counts from here
    data_load_s: float = 0.0
    run_plan: RunPlan | None = None
    teachers: Teachers | None = None  # published into the run directory
    students: StudentPlan | None = None  # the search's plan, fitted again once the teacher is done
    views: Views | None = None
    imported_facts: dict[str, Any] = field(default_factory=dict)  # a teacher brought as an ONNX file: for its card

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.run_dir)


def check_names(cfg: PipelineConfig) -> None:
    """A ConfigError for any architecture, candidate or method the config names that the tables lack."""
    for member in member_configs(cfg.teacher):
        lookup(TEACHERS, member.architecture, "teacher architecture")
    candidate_specs(cfg.student)
    for method in (cfg.student.method, *cfg.student.methods):
        lookup(LOSSES, method, "student method")


def load_data(cfg: PipelineConfig) -> Dataset:
    """The data, an image folder's decoded images cached in the run directory."""
    return load_dataset(cfg.data, Path(cfg.run_dir) / "images")


def open_context(cfg: PipelineConfig) -> Context:
    """Check the names the config gives and a teacher brought as an ONNX file (before any training), load the
    data (printing what the loader noticed), save the config, with the data's class names, in the run dir."""
    start = time.perf_counter()
    check_names(cfg)
    if cfg.onnx_teacher.path:
        cfg = configured(cfg)
    data = load_data(cfg)
    loaded = time.perf_counter() - start
    for note in data.notes:
        print(note, file=sys.stderr)
    cfg = replace(cfg, data=replace(cfg.data, labels=data.labels))
    save_config(cfg, Path(cfg.run_dir) / "config.yaml")
    return Context(cfg, data, {}, started=start, data_load_s=loaded)


def timed(ctx: Context, step: str, fn: Callable[[], T]) -> T:
    """Run a step and record its wall time (a cached step takes well under a second)."""
    start = time.perf_counter()
    result = fn()
    ctx.timings[step] = ctx.timings.get(step, 0.0) + time.perf_counter() - start
    ctx.loads[step] = max(ctx.loads.get(step, 0.0), os.getloadavg()[0])  # how shared the cores were
    return result


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
