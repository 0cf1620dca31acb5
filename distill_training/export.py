"""ONNX export that validates itself, then publishes the model and its card into a model repository.

Export -> run in onnxruntime against PyTorch on real test images (max abs logit difference, argmax agreement)
-> refuse on mismatch -> ONNX accuracy on the whole test set -> copy into `<repo>/<name>/<version>/model.onnx`
and write `<repo>/<name>/config.json` (`modelrepo.card.ModelCard`). Nothing is published when validation fails.

The card records how the model was made: its `method` (`teacher`, or a student method of `losses.LOSSES`) and
its `architecture` (a name in `nets.TEACHERS` or `nets.STUDENTS`). Readers take any name, so the writer checks
them here, against its own tables, before exporting anything.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from distill_training.config import ConfigError, ExportConfig
from distill_training.data import Dataset
from distill_training.losses import LOSSES
from distill_training.nets import ENSEMBLE, STUDENTS, TEACHERS, count_parameters, set_memory_format
from modelrepo.card import Ensemble, ModelCard, Preprocessing, Role, TensorSpec, VersionRecord
from modelrepo.layout import card_path, model_path, read_card, sha256_file, write_card
from modelrepo.onnx import open_session

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
TEACHER_METHOD = "teacher"  # the method a teacher's card records: trained on the labels


class ExportValidationError(Exception):
    """The ONNX model disagrees with PyTorch beyond the thresholds; nothing was published."""


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """The dynamo exporter logs optional-dependency notes and emits FutureWarnings from torch internals."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_onnx(model: nn.Module, image_shape: tuple[int, int, int], path: Path, *, opset: int) -> Path:
    """Export with the dynamo exporter to a single file, with a dynamic batch axis (example batch of 2)."""
    model = set_memory_format(model, torch.contiguous_format).eval()
    example = torch.zeros(2, *image_shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with quiet_exporter(), torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=True,
            external_data=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            verbose=False,
        )
    return path


def session(path: Path, *, threads: int = 0) -> ort.InferenceSession:
    return open_session(path, intra_op_threads=threads)


def onnx_logits(sess: ort.InferenceSession, x: np.ndarray, *, batch_size: int = 1000) -> np.ndarray:
    outs = [sess.run([OUTPUT_NAME], {INPUT_NAME: x[i : i + batch_size]})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(outs)  # (N, K)


@dataclass(frozen=True)
class Validation:
    images: int
    max_abs_diff: float
    agreement: float


def validate(path: Path, model: nn.Module, images: torch.Tensor, cfg: ExportConfig) -> Validation:
    """Compare onnxruntime with PyTorch on real images; raise ExportValidationError beyond the thresholds."""
    with torch.no_grad():
        expected = model.eval()(images).numpy()  # (N, K)
    got = onnx_logits(session(path), images.numpy())
    result = Validation(
        images=len(images),
        max_abs_diff=float(np.abs(got - expected).max()),
        agreement=float((got.argmax(1) == expected.argmax(1)).mean()),
    )
    if result.max_abs_diff > cfg.max_abs_diff or result.agreement < cfg.min_agreement:
        raise ExportValidationError(
            f"{path}: onnxruntime disagrees with PyTorch on {result.images} test images: max abs logit diff "
            f"{result.max_abs_diff:.2e} (limit {cfg.max_abs_diff:.0e}), argmax agreement {result.agreement:.4f} "
            f"(limit {cfg.min_agreement}); not published"
        )
    return result


def onnx_accuracy(path: Path, x: torch.Tensor, y: torch.Tensor) -> float:
    logits = onnx_logits(session(path), x.numpy())
    return float((logits.argmax(1) == y.numpy()).mean())


@dataclass(frozen=True)
class Published:
    card: ModelCard
    model_file: Path
    validation: dict[str, Any]

    @property
    def record(self) -> VersionRecord:
        return self.card.versions[self.card.latest_version]

    @property
    def val_accuracy(self) -> float:
        """Of the ONNX model on the validation split, measured at export (the selection's number)."""
        return float(self.record.config.get("val_accuracy", 0.0))


def publish(
    model: nn.Module,
    data: Dataset,
    cfg: ExportConfig,
    *,
    repo: Path,
    name: str,
    role: Role,
    method: str,
    architecture: str,
    teacher: str | None,
    source_sha256: str,
    config: dict[str, Any],
    ensemble: Ensemble | None = None,
    version: int = 1,
) -> Published:
    """Export `model` (its weights hashed as `source_sha256`), validate, measure, publish with its card; skip if
    up to date."""
    check_names(role, method, architecture)
    source_sha = source_sha256
    target = model_path(repo, name, version)
    existing = published_if_up_to_date(repo, name, version, (method, architecture), source_sha, config)
    if existing is not None:
        return existing
    staging = export_onnx(model, data.image_shape, repo / name / f".staging-{version}" / "model.onnx", opset=cfg.opset)
    try:
        check = validate(staging, model, data.test_x[: cfg.validate_images], cfg)
        test_accuracy = onnx_accuracy(staging, data.test_x, data.test_y)
        val_accuracy = onnx_accuracy(staging, data.val_x, data.val_y)
    except ExportValidationError:
        shutil.rmtree(staging.parent, ignore_errors=True)
        raise
    target.parent.mkdir(parents=True, exist_ok=True)
    staging.replace(target)
    shutil.rmtree(staging.parent, ignore_errors=True)
    c, h, w = data.image_shape
    validation = {"images": check.images, "max_abs_diff": check.max_abs_diff, "agreement": check.agreement}
    record = VersionRecord(
        sha256=sha256_file(target),
        size_bytes=target.stat().st_size,
        parameters=count_parameters(model),
        test_accuracy=test_accuracy,
        method=method,
        architecture=architecture,
        config={
            "training": config,
            "source_sha256": source_sha,
            "validation": validation,
            "val_accuracy": val_accuracy,
        },
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    card = ModelCard(
        name=name,
        role=role,
        teacher=teacher,
        labels=list(data.labels),
        input=TensorSpec(name=INPUT_NAME, datatype="FP32", shape=[-1, c, h, w]),
        output=TensorSpec(name=OUTPUT_NAME, datatype="FP32", shape=[-1, len(data.labels)]),
        preprocessing=Preprocessing(height=h, width=w, channels=1 if c == 1 else 3, mean=data.mean, std=data.std),
        versions={version: record},
        ensemble=ensemble,
    )
    write_card(repo, card)
    return Published(card, target, validation)


def check_names(role: Role, method: str, architecture: str) -> None:
    """A ConfigError unless `method` and `architecture` are entries of this package's tables for `role`."""
    methods = [TEACHER_METHOD] if role == "teacher" else list(LOSSES)
    architectures = [*TEACHERS, ENSEMBLE] if role == "teacher" else list(STUDENTS)
    for kind, name, known in (("method", method, methods), ("architecture", architecture, architectures)):
        if name not in known:
            raise ConfigError(f"unknown {role} {kind} {name!r}; known: {', '.join(known)}")


def published_if_up_to_date(
    repo: Path, name: str, version: int, made: tuple[str, str], source_sha: str, config: dict[str, Any]
) -> Published | None:
    """The published model if its card records this (method, architecture), source weights and config."""
    try:
        card = read_card(card_path(repo, name))
    except (OSError, ValueError):
        return None
    record = card.versions.get(version)
    target = model_path(repo, name, version)
    if record is None or not target.is_file() or sha256_file(target) != record.sha256:
        return None
    if (record.method, record.architecture) != made:
        return None
    if record.config.get("source_sha256") != source_sha or record.config.get("training") != config:
        return None
    return Published(card, target, dict(record.config.get("validation", {})))
