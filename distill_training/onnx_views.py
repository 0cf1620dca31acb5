"""The students' views from a teacher brought as an ONNX file: its outputs on the training views, computed once in
onnxruntime and cached, keyed by the teacher file's sha256 and the data; and the check that it is the right
teacher for this data before any student trains on it.

The same `(images, labels, teacher logits)` views our own teacher gives (`logits_cache`), so the students do not
know where their teacher came from. Probabilities become log-probabilities for the KD loss.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill_training.config import PipelineConfig, to_dict
from distill_training.data import Dataset
from distill_training.logits_cache import Views, training_views
from distill_training.onnx_teacher import OnnxTeacher, OnnxTeacherError, as_logits, open_teacher, output_kind
from distill_training.staleness import digest

SAMPLE = 512  # training images the teacher is checked on before its pass over all of them


def check_classes(teacher: OnnxTeacher, labels: tuple[str, ...]) -> None:
    if teacher.classes != len(labels):
        raise OnnxTeacherError(
            f"the teacher gives {teacher.classes} class scores but the data has {len(labels)} classes "
            f"({', '.join(labels[:12])}{', ...' if len(labels) > 12 else ''}): use the teacher trained for these "
            "classes, or give the data exactly its classes"
        )


def _best_order(predicted: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> list[str] | None:
    """The class order the teacher's outputs seem to follow (each output -> the folder it is most often right
    for), where that is a permutation of the classes; None otherwise."""
    k = len(names)
    confusion = np.bincount(predicted * k + labels, minlength=k * k).reshape(k, k)  # (output, true class)
    order = confusion.argmax(axis=1)
    return [names[i] for i in order] if len(set(order.tolist())) == k else None


def check_agreement(
    teacher: OnnxTeacher, logits: np.ndarray, labels: np.ndarray, names: tuple[str, ...], ratio: float
) -> float:
    """The teacher's accuracy on these training images (labels index `names`); an OnnxTeacherError when it is
    below `ratio` times chance: the wrong model, the wrong class order or the wrong preprocessing."""
    predicted = logits.argmax(axis=1)
    accuracy = float((predicted == labels).mean())
    if accuracy >= ratio / len(names):
        return accuracy
    order = _best_order(predicted, labels, names)
    hint = f" Its outputs fit the classes best in this order: {', '.join(order)}." if order else ""
    raise OnnxTeacherError(
        f"the teacher {teacher.path} agrees with the labels on only {accuracy:.1%} of {len(labels)} training "
        f"images (chance is {1 / len(names):.1%}, at least {ratio:g}x chance is needed): it is the wrong model, its "
        "classes are in another order than the data's (an image folder's sort by name unless DIR/labels.txt "
        "lists them in output order; IDX and NPZ labels index data.labels), or it expects other preprocessing "
        f"(--mean, --std, --scale, --layout).{hint}"
    )


def views_key(cfg: PipelineConfig, data: Dataset, teacher: OnnxTeacher) -> str:
    return digest(
        {
            "teacher_sha256": teacher.sha256,
            "input": teacher.input.model_dump(),
            "output": teacher.output.name,
            "preprocessing": teacher.preprocessing.model_dump(),
            "fingerprint": data.fingerprint,
            "data": to_dict(cfg.data),
            "hflip": cfg.student.hflip_view,
        }
    )


def _train_pixels(data: Dataset) -> np.ndarray:
    if data.train_pixels is None:
        raise ValueError("the dataset holds no raw pixels (load it with data.load_dataset)")
    return data.train_pixels


def _computed(cfg: PipelineConfig, data: Dataset, teacher: OnnxTeacher) -> tuple[torch.Tensor, dict[str, Any]]:
    """Check the teacher on a sample of train, then run it on every training view."""
    pixels, labels = _train_pixels(data), data.train_y.numpy()
    batch = cfg.onnx_teacher.batch_size
    sample = np.random.default_rng(0).permutation(len(pixels))[:SAMPLE]
    scores = teacher.scores(pixels[sample], batch_size=batch)
    ratio = cfg.onnx_teacher.min_chance_ratio
    check_agreement(teacher, as_logits(scores, output_kind(scores)), labels[sample], data.labels, ratio)
    views = {"teacher outputs (onnxruntime)": pixels}
    if cfg.student.hflip_view:  # the mirror images, after the originals as training_views orders them
        views["teacher outputs, mirrored"] = pixels[..., ::-1]
    scores = np.concatenate([teacher.scores(p, batch_size=batch, desc=desc) for desc, p in views.items()])
    kind = output_kind(scores)
    logits = torch.from_numpy(as_logits(scores, kind))  # (N, K)
    if not torch.isfinite(logits).all():
        raise OnnxTeacherError(f"the teacher {teacher.path} gives NaN or infinite scores: check its preprocessing")
    return logits, {"output_kind": kind}


def onnx_cached_views(cfg: PipelineConfig, data: Dataset, cache_dir: Path) -> tuple[Views, str]:
    """(images, labels, teacher logits) for the students and the cache key; runs the teacher on a miss."""
    teacher = open_teacher(cfg.onnx_teacher, cfg.data)
    check_classes(teacher, data.labels)
    key = views_key(cfg, data, teacher)
    x, y = training_views(data, hflip=cfg.student.hflip_view)
    path = cache_dir / f"{key[:16]}.pt"
    logits, facts = _read(path, (len(x), teacher.classes))
    if logits is None:
        logits, facts = _computed(cfg, data, teacher)
        cache_dir.mkdir(parents=True, exist_ok=True)
        torch.save(logits, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
    n = len(data.train_y)
    ratio = cfg.onnx_teacher.min_chance_ratio
    facts["train_accuracy"] = check_agreement(teacher, logits[:n].numpy(), data.train_y.numpy(), data.labels, ratio)
    path.with_suffix(".json").write_text(json.dumps(facts, indent=2) + "\n")
    return (x, y, logits), key


def _read(path: Path, shape: tuple[int, int]) -> tuple[torch.Tensor | None, dict[str, Any]]:
    try:
        logits = torch.load(path, weights_only=True)
        facts = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError):  # missing or half-written
        return None, {}
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != shape or "output_kind" not in facts:
        return None, {}
    return logits, dict(facts)


def teacher_facts(cache_dir: Path, key: str) -> dict[str, Any]:
    """What the views' computation found: `output_kind` and `train_accuracy` (for the teacher's card)."""
    return dict(json.loads((cache_dir / f"{key[:16]}.json").read_text()))
