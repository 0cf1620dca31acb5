"""A teacher brought as an ONNX file, as the students' views see it (`teachers.Teacher`): its outputs on the raw
pixels of each training view, fed as its card will say, probabilities turned into log-probabilities for the KD
losses; and the checks that it is the right teacher for this data before any student trains on it.

`logits_cache` caches its logits like our own teacher's, keyed by the file's sha256, what it takes and the data,
so the students do not know where their teacher came from.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from distill_training.config import PipelineConfig
from distill_training.data import Dataset
from distill_training.logits_cache import Views, train_pixels
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


class ImportedTeacher:
    """The teacher file run in onnxruntime on raw pixels. Opening it checks it on a sample of train (the right
    classes, better than chance) and tells logits from probabilities before its pass over every view."""

    reads_pixels = True

    def __init__(self, cfg: PipelineConfig, data: Dataset) -> None:
        self.file = open_teacher(cfg.onnx_teacher, cfg.data)
        check_classes(self.file, data.labels)
        self.batch_size, self.min_chance_ratio = cfg.onnx_teacher.batch_size, cfg.onnx_teacher.min_chance_ratio
        pixels, labels = train_pixels(data), data.train_y.numpy()
        sample = np.random.default_rng(0).permutation(len(pixels))[:SAMPLE]
        scores = self.file.scores(pixels[sample], batch_size=self.batch_size)
        self.output_kind = output_kind(scores)
        check_agreement(
            self.file, as_logits(scores, self.output_kind), labels[sample], data.labels, self.min_chance_ratio
        )
        self.key = digest(
            {
                "teacher_sha256": self.file.sha256,
                "input": self.file.input.model_dump(),
                "output": self.file.output.name,
                "preprocessing": self.file.preprocessing.model_dump(),
                "output_kind": self.output_kind,
            }
        )

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        logits = as_logits(self.file.scores(images.numpy(), batch_size=self.batch_size), self.output_kind)
        if not np.isfinite(logits).all():
            raise OnnxTeacherError(
                f"the teacher {self.file.path} gives NaN or infinite scores: check its preprocessing"
            )
        return torch.from_numpy(logits)  # (N, K)

    def facts(self, views: Views, labels: tuple[str, ...]) -> dict[str, Any]:
        """What its card records of it: `output_kind`, and `train_accuracy` on the train split (view 0, the images
        themselves), which must also be above chance."""
        accuracy = check_agreement(self.file, views.logits[0].numpy(), views.y.numpy(), labels, self.min_chance_ratio)
        return {"output_kind": self.output_kind, "train_accuracy": accuracy}
