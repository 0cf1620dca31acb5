"""Publishing: every model is exported, validated and carded into the run directory (the served teacher, an
ensemble's members and its card listing them, every candidate, the student, the control), so the frontier's
numbers are all measured on ONNX files; only once everything is built are the teacher and the student
installed into the served repository (`install`), so a failed run leaves that repository as it was.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distill_training.config import StudentConfig, TeacherConfig, to_dict
from distill_training.context import Context, timed
from distill_training.export import TEACHER_METHOD, Published, publish
from distill_training.latency import measure_latency
from distill_training.nets import ENSEMBLE, Ensemble
from distill_training.search import Scored, choose, folder_name, latency_limit
from distill_training.staleness import digest
from distill_training.teachers import Teachers, load_members, member_name
from distill_training.train import StudentResult, build_student, load_weights
from modelrepo.card import Ensemble as EnsembleCard
from modelrepo.card import EnsembleMember, TensorSpec
from modelrepo.layout import card_path, read_card, sha256_file, write_card


def exported_dir(ctx: Context) -> Path:
    """Where the run publishes its models before any is installed into the served repository."""
    return ctx.run_dir / "export"


def publish_teacher(ctx: Context, configs: list[TeacherConfig], weights: list[Path]) -> Teachers:
    """The served teacher, and an ensemble's members each on its own, into `<run_dir>/export`."""
    cfg, data, repo = ctx.cfg, ctx.data, exported_dir(ctx)

    def run() -> Teachers:
        nets = load_members(configs, data, weights)
        shas = [sha256_file(w) for w in weights]
        common: dict[str, Any] = {"role": "teacher", "method": TEACHER_METHOD, "teacher": None, "config": to_dict(cfg)}
        if len(nets) == 1:
            served = publish(
                nets[0],
                data,
                cfg.export,
                repo=repo,
                name=cfg.teacher.name,
                architecture=configs[0].architecture,
                source_sha256=shas[0],
                **common,
            )
            return Teachers(served, [])
        members = [
            publish(
                net,
                data,
                cfg.export,
                repo=repo,
                name=member_name(cfg.teacher, i),
                architecture=tc.architecture,
                source_sha256=sha,
                **common,
            )
            for i, (net, tc, sha) in enumerate(zip(nets, configs, shas, strict=True))
        ]
        card = EnsembleCard(members=[_member(m) for m in members])
        served = publish(
            Ensemble(nets),
            data,
            cfg.export,
            repo=repo,
            name=cfg.teacher.name,
            architecture=ENSEMBLE,
            source_sha256=digest(shas),
            ensemble=card,
            **common,
        )
        return Teachers(served, members)

    return timed(ctx, "export", run)


def _member(pub: Published) -> EnsembleMember:
    r = pub.record
    return EnsembleMember(
        name=pub.card.name,
        architecture=r.architecture,
        parameters=r.parameters,
        test_accuracy=r.test_accuracy,
        sha256=r.sha256,
    )


def publish_student(
    ctx: Context,
    result: StudentResult,
    cfg: StudentConfig,
    spec: str,
    *,
    repo: Path,
    name: str,
    selected: dict[str, Any] | None = None,
) -> Published:
    """One trained student (`result`, of candidate `spec`, trained with `cfg`) with its card."""
    training = to_dict(ctx.cfg) | {"candidate": spec, "student_epochs": cfg.epochs}
    if selected is not None:
        training["selected"] = selected

    def run() -> Published:
        model = load_weights(build_student(cfg, ctx.data), result.weights)
        return publish(
            model,
            ctx.data,
            ctx.cfg.export,
            repo=repo,
            name=name,
            role="student",
            method=result.method,
            architecture=cfg.architecture,
            teacher=ctx.cfg.teacher.name,
            source_sha256=sha256_file(result.weights),
            config=training,
        )

    return timed(ctx, "export", run)


def install(pub: Published, repo: Path) -> Published:
    """Copy a published model and its card into the served repository (the file first, then the card, each
    renamed into place); nothing is copied when the repository already holds exactly this file."""
    name, version = pub.card.name, pub.card.latest_version
    target = repo / name / str(version) / pub.model_file.name
    try:
        installed = read_card(card_path(repo, name))
    except (OSError, ValueError):
        installed = None
    if installed != pub.card or not target.is_file() or sha256_file(target) != pub.record.sha256:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pub.model_file, target.with_suffix(".tmp"))
        target.with_suffix(".tmp").replace(target)
        write_card(repo, pub.card)
    return Published(pub.card, target, pub.validation)


def candidate_name(ctx: Context, spec: str) -> str:
    return f"{ctx.cfg.student.name}-{folder_name(spec)}"


def publish_candidates(
    ctx: Context, searched: dict[str, StudentResult], configs: dict[str, StudentConfig]
) -> dict[str, Published]:
    """Every candidate of the search into `<run_dir>/candidates` (their latency is measured on these files)."""
    repo = ctx.run_dir / "candidates"
    return {
        spec: publish_student(ctx, r, configs[spec], spec, repo=repo, name=candidate_name(ctx, spec))
        for spec, r in searched.items()
    }


@dataclass(frozen=True)
class Latency:
    p50_us: float
    p90_us: float


LATENCY = "latency.json"  # in the run directory: measured latency by the sha256 of the ONNX file


def measure(ctx: Context, files: dict[str, Path], inputs: dict[str, TensorSpec]) -> dict[str, Latency]:
    """Batch-1 onnxruntime latency of every file, fed as its card's input (`inputs`, by name), in interleaved
    rounds (`latency.measure_latency`); a file measured before is not measured again, so a rerun makes the same
    choice as the run it repeats."""
    export, path = ctx.cfg.export, ctx.run_dir / LATENCY
    try:
        known: dict[str, dict[str, float]] = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    shas = {name: sha256_file(f) for name, f in files.items()}
    todo = {name: f for name, f in files.items() if shas[name] not in known}

    def run() -> None:
        times = measure_latency(todo, threads=export.latency_threads, runs=export.latency_runs, inputs=inputs)
        for name, t in times.items():
            p50, p90 = (float(np.percentile(np.array(t) * 1e6, q)) for q in (50, 90))
            known[shas[name]] = {"p50_us": p50, "p90_us": p90}
        path.write_text(json.dumps(known, indent=2) + "\n")

    if todo:
        timed(ctx, "latency", run)
    return {name: Latency(**known[sha]) for name, sha in shas.items()}


@dataclass(frozen=True)
class Choice:
    spec: str
    limit_us: float  # inf: no limit
    rule: str

    @property
    def limit_json(self) -> float | None:
        """The limit as JSON holds it: null for none (JSON has no infinity, and a card would read it back as
        null, so the student would never be up to date)."""
        return self.limit_us if math.isfinite(self.limit_us) else None


def choose_candidate(
    ctx: Context, searched: dict[str, StudentResult], latency: dict[str, Latency], teacher_us: float
) -> Choice:
    """The most accurate candidate on validation that meets the latency budget (measured on the trained files)."""
    budget = ctx.cfg.budget
    limit, rule = latency_limit(budget.latency_budget_us, budget.min_speedup, teacher_us)
    scored = [Scored(spec, r.val_accuracy, latency[spec].p50_us) for spec, r in searched.items()]
    return Choice(choose(scored, limit, rule).spec, limit, rule)
