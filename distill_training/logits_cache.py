"""Teacher logits on the training views, computed once per teacher checkpoint and cached on disk.

The cache key hashes the teacher's weights file, the data and the views, so a new teacher (or new data) never
reuses stale logits, and distillation epochs then cost what a label-only student epoch costs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from distill_training.config import PipelineConfig, to_dict
from distill_training.data import Dataset
from distill_training.nets import set_memory_format
from distill_training.staleness import digest
from distill_training.train import build_teacher, load_weights
from modelrepo.layout import sha256_file

Views = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # images (N, C, H, W), labels (N,), teacher logits (N, K)


def training_views(data: Dataset, *, hflip: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed set of training images a student sees: the train split, plus its mirror images if asked."""
    if not hflip:
        return data.train_x, data.train_y
    return torch.cat([data.train_x, data.train_x.flip(3)]), torch.cat([data.train_y, data.train_y])


def logits_key(cfg: PipelineConfig, data: Dataset, teacher_weights: Path) -> str:
    return digest(
        {
            "teacher_sha256": sha256_file(teacher_weights),
            "fingerprint": data.fingerprint,
            "data": to_dict(cfg.data),
            "hflip": cfg.student.hflip_view,
        }
    )


@torch.no_grad()
def _teacher_logits(teacher: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """In channels_last, which speeds up CPU convolutions here as it does in training."""
    set_memory_format(teacher.eval(), torch.channels_last)
    out = [
        teacher(x[i : i + batch_size].contiguous(memory_format=torch.channels_last))
        for i in tqdm(range(0, len(x), batch_size), desc="teacher logits")
    ]
    return torch.cat(out).float()  # (N, K)


def cached_views(cfg: PipelineConfig, data: Dataset, teacher_weights: Path, cache_dir: Path) -> tuple[Views, str]:
    """(images, labels, teacher logits) for the student, and the cache key; computes the logits on a miss."""
    key = logits_key(cfg, data, teacher_weights)
    x, y = training_views(data, hflip=cfg.student.hflip_view)
    path = cache_dir / f"{key[:16]}.pt"
    if path.is_file():
        logits = torch.load(path, weights_only=True)
        if isinstance(logits, torch.Tensor) and logits.shape == (len(x), len(data.labels)):
            return (x, y, logits), key
    teacher = load_weights(build_teacher(cfg.teacher, data), teacher_weights)
    logits = _teacher_logits(teacher, x)
    cache_dir.mkdir(parents=True, exist_ok=True)
    torch.save(logits, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return (x, y, logits), key
