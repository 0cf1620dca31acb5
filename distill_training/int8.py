"""INT8 copies as models of their own: the accuracy gate, the speed measurement, the rule that publishes, the card.

Each FP32 model tried (the served teacher, the exported student) gets an INT8 copy (`quantize.best_copy`),
measured side by side with its FP32 model on this CPU: batch-1 latency (p50, p90; one thread), batch-32
throughput on one thread (images per second per core) and size on disk. The rule: an INT8 copy is published
as `<fp32 name>-int8` when it loses at most `quantize.max_drop` of test accuracy (the gate) and is faster or
smaller than its FP32 model; the report says which, or by how much it missed the gate.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

from distill_training.config import PipelineConfig, QuantizeConfig
from distill_training.export import INPUT_NAME, Published, session
from distill_training.latency import measure_latency, seconds_per_call
from distill_training.quantize import Quantized
from modelrepo.card import ModelCard, Quantization, VersionRecord
from modelrepo.host import cpu_name, int8_dot_products
from modelrepo.layout import model_path, sha256_file, write_card

SUFFIX: Final = "-int8"
ROUNDING: Final = 1e-9  # accuracies are counts over the test set: a copy exactly at the gate passes it


def int8_name(fp32_name: str) -> str:
    return f"{fp32_name}{SUFFIX}"


@dataclass(frozen=True)
class Speed:
    p50_us: float  # batch 1, one thread
    p90_us: float
    images_per_s: float  # in batches of `batch` on one thread: per core
    batch: int
    size_bytes: int


def _throughput(path: Path, batch: int, calls: int) -> float:
    sess = session(path, threads=1)
    shape = [int(d) for d in sess.get_inputs()[0].shape[1:]]
    x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
    return batch / seconds_per_call(lambda: sess.run(None, {INPUT_NAME: x}), calls, warmup=3)


def measure_speeds(paths: dict[str, Path], cfg: QuantizeConfig, *, threads: int, runs: int) -> dict[str, Speed]:
    """Batch-1 latency of every file in interleaved rounds (so a noisy neighbour slows each alike), then the
    throughput of each on one thread, and its size."""
    latency = measure_latency(paths, threads=threads, runs=runs)
    speeds = {}
    for name, path in paths.items():
        p50, p90 = (float(np.percentile(np.array(latency[name]) * 1e6, q)) for q in (50, 90))
        images_per_s = _throughput(path, cfg.throughput_batch, cfg.throughput_calls)
        speeds[name] = Speed(p50, p90, images_per_s, cfg.throughput_batch, path.stat().st_size)
    return speeds


@dataclass(frozen=True)
class Decision:
    drop: float  # FP32 test accuracy minus INT8 test accuracy (fraction; negative: the copy did better)
    gate: float  # the most it may drop
    faster: bool  # lower batch-1 p50
    smaller: bool  # fewer bytes on disk
    published: bool
    reason: str


def decide(fp32_accuracy: float, int8_accuracy: float, max_drop: float, fp32: Speed, int8: Speed) -> Decision:
    """The gate, then the rule: published when within the gate and faster or smaller."""
    drop = fp32_accuracy - int8_accuracy
    faster, smaller = int8.p50_us < fp32.p50_us, int8.size_bytes < fp32.size_bytes
    if drop - max_drop > ROUNDING:
        reason = (
            f"not published: lost {drop * 100:.2f} pts of test accuracy, {(drop - max_drop) * 100:.2f} pts more "
            f"than the gate allows ({max_drop * 100:.2f})"
        )
        return Decision(drop, max_drop, faster, smaller, False, reason)
    gains = [
        f"{fp32.p50_us / int8.p50_us:.2f}x faster" if faster else f"{int8.p50_us / fp32.p50_us:.2f}x slower",
        f"{fp32.size_bytes / int8.size_bytes:.1f}x smaller" if smaller else "no smaller",
    ]
    within = f"test accuracy {(int8_accuracy - fp32_accuracy) * 100:+.2f} pts, within the gate of {max_drop * 100:.2f}"
    if not (faster or smaller):
        return Decision(drop, max_drop, faster, smaller, False, f"not published: {within} but {' and '.join(gains)}")
    return Decision(drop, max_drop, faster, smaller, True, f"published: {within}, {', '.join(gains)}")


@dataclass(frozen=True)
class Trial:
    """One FP32 model's INT8 copy, as it measured; `entry` is its line of the report's `quantization` list."""

    model: str
    fp32_model: str
    role: str
    architecture: str
    method: str
    calibration: str
    fp32_accuracy: float
    int8_accuracy: float
    fp32_val_accuracy: float
    int8_val_accuracy: float
    val_accuracy_by_calibration: dict[str, float]
    agreement: float  # INT8 vs FP32 argmax agreement on the test images
    max_abs_diff: float
    images: int
    parameters: int
    fp32_speed: Speed
    int8_speed: Speed
    decision: Decision
    cpu: str  # where the speeds were measured
    int8_dot_products: list[str]  # its int8 dot-product instructions (none: INT8 kernels may lose to FP32)
    load_1min: float  # when measured: above the core count, the cores were shared and the speeds are noisy

    def entry(self) -> dict[str, Any]:
        d = self.decision
        return {
            "model": self.model,
            "fp32_model": self.fp32_model,
            "method": self.method,
            "calibration": self.calibration,
            "fp32_accuracy": self.fp32_accuracy,
            "int8_accuracy": self.int8_accuracy,
            "drop": d.drop,
            "gate": d.gate,
            "published": d.published,
        }

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Trial:
        speeds = {k: Speed(**d[k]) for k in ("fp32_speed", "int8_speed")}
        return cls(**(d | speeds | {"decision": Decision(**d["decision"])}))


def trial_of(fp32: Published, copy: Quantized, speeds: tuple[Speed, Speed], max_drop: float) -> Trial:
    r = fp32.record
    decision = decide(r.test_accuracy, copy.test.accuracy, max_drop, *speeds)
    return Trial(
        model=int8_name(fp32.card.name),
        fp32_model=fp32.card.name,
        role=fp32.card.role,
        architecture=r.architecture,
        method=copy.method,
        calibration=copy.calibration,
        fp32_accuracy=r.test_accuracy,
        int8_accuracy=copy.test.accuracy,
        fp32_val_accuracy=fp32.val_accuracy,
        int8_val_accuracy=copy.val.accuracy,
        val_accuracy_by_calibration=copy.val_accuracy_by_calibration,
        agreement=copy.test.agreement,
        max_abs_diff=copy.test.max_abs_diff,
        images=copy.test.images,
        parameters=r.parameters,
        fp32_speed=speeds[0],
        int8_speed=speeds[1],
        decision=decision,
        cpu=cpu_name(),
        int8_dot_products=int8_dot_products(),
        load_1min=os.getloadavg()[0],
    )


def write_int8(repo: Path, fp32: Published, trial: Trial, int8_file: Path, settings: dict[str, Any]) -> Published:
    """The INT8 copy as a model of its own in `repo`: its file at version 1 and a card that is its FP32 model's
    (same role, teacher, interface) with its own name, file, accuracy and `quantization` record."""
    target = model_path(repo, trial.model, 1)
    target.parent.mkdir(parents=True, exist_ok=True)
    int8_file.replace(target)
    r = fp32.record
    validation = {"images": trial.images, "agreement": trial.agreement, "max_abs_diff": trial.max_abs_diff}
    record = VersionRecord(
        sha256=sha256_file(target),
        size_bytes=target.stat().st_size,
        parameters=r.parameters,
        test_accuracy=trial.int8_accuracy,
        method=r.method,
        architecture=r.architecture,
        config={
            "training": r.config.get("training", {}),
            "source_sha256": r.sha256,  # the FP32 model's file
            "quantize": settings,
            "validation": validation,
            "val_accuracy": trial.int8_val_accuracy,
            "val_accuracy_by_calibration": trial.val_accuracy_by_calibration,
        },
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    quantization = Quantization(
        method=trial.method,
        calibration=trial.calibration,
        fp32_model=fp32.card.name,
        fp32_accuracy=trial.fp32_accuracy,
        int8_accuracy=trial.int8_accuracy,
        max_drop=trial.decision.gate,
    )
    card = fp32.card.model_copy(update={"name": trial.model, "quantization": quantization, "versions": {1: record}})
    write_card(repo, ModelCard.model_validate(card.model_dump()))
    return Published(card, target, validation)


def estimated_s(cfg: PipelineConfig, teacher_us: float, student_us: float, images: tuple[int, int]) -> float:
    """What the quantize step will take, for the time budget's reserve: each of the teacher and the student
    calibrated and scored on validation per calibration method, both copies scored on validation and test,
    then measured; every image priced at its batch-1 latency (batched runs cost less: an upper bound)."""
    q = cfg.quantize
    if not q.enabled:
        return 0.0
    val, test = images
    scored = len(q.calibrations) * (q.calibration_images + val) + 2 * (val + test)
    measured = 2 * (cfg.export.latency_runs + q.throughput_batch * q.throughput_calls)
    return (scored + measured) * (teacher_us + student_us) * 1e-6
