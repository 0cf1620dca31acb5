"""Publish a teacher brought as an ONNX file: the file copied into the model repository as it is, and a card that
says exactly what it takes (input name, datatype, layout, size, normalisation) and gives (logits or
probabilities), with its accuracy measured in onnxruntime on the test split."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from distill_training.config import PipelineConfig, to_dict
from distill_training.data import Dataset
from distill_training.export import TEACHER_METHOD, Published, published_if_up_to_date
from distill_training.onnx_teacher import IMPORTED_ARCHITECTURE, OnnxTeacher, open_teacher
from modelrepo.card import ModelCard, VersionRecord
from modelrepo.layout import model_path, sha256_file, write_card


def accuracy_on_test(teacher: OnnxTeacher, data: Dataset, batch_size: int) -> float:
    """onnxruntime's accuracy on the whole test split, fed as the card says (what the service will get)."""
    if data.test_pixels is None:
        raise ValueError("the dataset holds no raw pixels (load it with data.load_dataset)")
    scores = teacher.scores(data.test_pixels, batch_size=batch_size, desc="teacher on the test split")
    return float((scores.argmax(axis=1) == data.test_y.numpy()).mean())


def _copy(teacher: OnnxTeacher, target: Path) -> None:
    """Copy through a staging file, and check the copy's sha256, so the repository never holds half a file."""
    staging = target.parent.parent / f".staging-{target.parent.name}" / target.name
    staging.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(teacher.path, staging)
    if sha256_file(staging) != teacher.sha256:
        shutil.rmtree(staging.parent, ignore_errors=True)
        raise OSError(f"copying {teacher.path} to {staging} changed its bytes (the disk or the file changed)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging.replace(target)
    shutil.rmtree(staging.parent, ignore_errors=True)


def publish_onnx_teacher(cfg: PipelineConfig, data: Dataset, repo: Path, facts: dict[str, Any]) -> Published:
    """`<repo>/<teacher.name>/1/model.onnx` and its card; skipped when the card already records this file and
    these settings. `facts` are what the students' views found (`output_kind`, `train_accuracy`)."""
    teacher, name, version = open_teacher(cfg.onnx_teacher, cfg.data), cfg.teacher.name, 1
    imported = {"onnx_teacher": to_dict(cfg.onnx_teacher), "data": to_dict(cfg.data)}
    made = (TEACHER_METHOD, IMPORTED_ARCHITECTURE)
    existing = published_if_up_to_date(repo, name, version, made, teacher.sha256, imported)
    if existing is not None:
        return existing
    accuracy = accuracy_on_test(teacher, data, cfg.onnx_teacher.batch_size)
    target = model_path(repo, name, version)
    _copy(teacher, target)
    record = VersionRecord(
        sha256=teacher.sha256,
        size_bytes=target.stat().st_size,
        parameters=teacher.parameters,
        test_accuracy=accuracy,
        method=TEACHER_METHOD,
        architecture=IMPORTED_ARCHITECTURE,
        config={
            "training": imported,
            "source": str(teacher.path.resolve()),
            "source_sha256": teacher.sha256,
            "train_accuracy": facts["train_accuracy"],
            "test_images": len(data.test_y),
        },
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    card = ModelCard(
        name=name,
        role="teacher",
        labels=list(data.labels),
        input=teacher.input,
        output=teacher.output,
        output_kind=facts["output_kind"],
        preprocessing=teacher.preprocessing,
        versions={version: record},
    )
    write_card(repo, card)
    return Published(card, target, {})
