"""The teacher as the students see it: something that gives logits for a set of images, identified by a key.

Distillation needs nothing else of it: the logits cache keys its files by `Teacher.key` and fills them with
`Teacher.logits`, so a teacher trained here (`ExportedTeacher` runs its export) and one brought from elsewhere as
an ONNX file (`onnx_views.ImportedTeacher`) are alike to everything downstream. Our own teacher is one net or
several members, each trained by `train.train_teacher` on its own seed, averaged by `nets.Ensemble` and exported
as one ONNX graph.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from distill_training.config import TeacherConfig
from distill_training.data import Dataset
from distill_training.export import Published
from distill_training.nets import Ensemble
from distill_training.train import build_teacher, load_weights
from modelrepo.layout import sha256_file
from modelrepo.onnx import open_session


class Teacher(Protocol):
    """Logits (N, K) for images (N, C, H, W): normalised ones, or raw uint8 pixels where `reads_pixels` (a teacher
    that does its own preprocessing); `key` changes whenever those logits would."""

    @property
    def key(self) -> str: ...

    @property
    def reads_pixels(self) -> bool: ...

    def logits(self, images: torch.Tensor) -> torch.Tensor: ...


class ExportedTeacher:
    """A teacher as an ONNX file, run by onnxruntime on every core in batches (several times faster than
    PyTorch's eager forward here): ours once exported, so the students learn from exactly the served model."""

    reads_pixels = False

    def __init__(self, path: Path, *, batch_size: int = 256, intra_op_threads: int = 0) -> None:
        self.path, self.batch_size = path, batch_size
        self.key = sha256_file(path)
        self._session = open_session(path, intra_op_threads=intra_op_threads)  # 0: every core
        self._input = self._session.get_inputs()[0].name

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        x = images.numpy()
        out = [
            self._session.run(None, {self._input: x[i : i + self.batch_size]})[0]
            for i in range(0, len(x), self.batch_size)
        ]
        return torch.from_numpy(np.concatenate(out)).float()  # (N, K)


@dataclass(frozen=True)
class Teachers:
    """The published teacher: the served model, and an ensemble's members on their own (empty for one net)."""

    served: Published
    members: list[Published]


def member_configs(cfg: TeacherConfig, count: int | None = None) -> list[TeacherConfig]:
    """One config per member, member i on seed `cfg.seed + i` (the first `count`); one teacher without members."""
    architectures = cfg.members or (cfg.architecture,)
    members = [replace(cfg, architecture=a, seed=cfg.seed + i) for i, a in enumerate(architectures)]
    return members[: count or len(members)]


def member_name(cfg: TeacherConfig, index: int) -> str:
    return f"{cfg.name}-member{index}"


def load_members(configs: list[TeacherConfig], data: Dataset, weights: list[Path]) -> list[nn.Module]:
    return [load_weights(build_teacher(c, data), w) for c, w in zip(configs, weights, strict=True)]


def served_model(members: list[nn.Module]) -> nn.Module:
    """The teacher that is served: the one member, or the ensemble of all of them."""
    return members[0] if len(members) == 1 else Ensemble(members)
