"""Teacher logits on the students' fixed training views, computed once per teacher and cached on disk.

The cache key hashes the teacher's key (its weights), the data and the views, so a new teacher (or new data)
never reuses stale logits, and distillation epochs then cost what a label-only student epoch costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from distill_training.config import PipelineConfig, to_dict
from distill_training.data import Dataset
from distill_training.losses import ALL_VIEWS
from distill_training.staleness import digest
from distill_training.teachers import Teacher
from distill_training.views import FIXED_VIEWS, ViewSet, fixed_views

VIEW_SEED = 12345  # the views are fixed: the same for every teacher, method and seed


@dataclass(frozen=True)
class Views:
    """What a student trains on: images (N, C, H, W), labels (N,), the fixed views of each image, and the
    teacher's logits on every view (V, N, K)."""

    x: torch.Tensor
    y: torch.Tensor
    views: ViewSet
    logits: torch.Tensor
    key: str  # keys the students trained on these logits


def view_count(cfg: PipelineConfig) -> int:
    """All `student.views` where a method needs them (`losses.ALL_VIEWS`), else the image and its mirror."""
    methods = {cfg.student.method, *cfg.student.methods}
    return max(cfg.student.views, FIXED_VIEWS) if methods & ALL_VIEWS else FIXED_VIEWS


def logits_key(cfg: PipelineConfig, data: Dataset, teacher_key: str) -> str:
    return digest(
        {
            "teacher": teacher_key,
            "fingerprint": data.fingerprint,
            "data": to_dict(cfg.data),
            "views": [view_count(cfg), VIEW_SEED, cfg.student.mirror],
        }
    )


def teacher_logits(
    teacher: Teacher, x: torch.Tensor, views: ViewSet, rows: torch.Tensor | None = None, chunk: int = 4096
) -> torch.Tensor:
    """(V, len(rows), K) on images `rows` of x (all of them by default): each view rendered a chunk at a time,
    so no copy of the whole set is held."""
    rows = torch.arange(len(x)) if rows is None else rows
    out = []
    for view in range(views.count):
        parts = []
        for idx in tqdm(torch.split(rows, chunk), desc=f"teacher logits, view {view + 1}/{views.count}"):
            parts.append(teacher.logits(views.render(x, torch.full_like(idx, view), idx)))
        out.append(torch.cat(parts))
    return torch.stack(out)


def train_pixels(data: Dataset) -> np.ndarray:
    """The raw uint8 pixels (N, C, H, W) of the train split, the rows of `data.train_x`."""
    if data.train_pixels is None:
        raise ValueError("the dataset holds no raw pixels (load it with data.load_dataset)")
    return data.train_pixels


def view_set(cfg: PipelineConfig, data: Dataset) -> ViewSet:
    """The students' fixed views of the training images, the same for every teacher, method and seed."""
    return fixed_views(len(data.train_x), view_count(cfg), seed=VIEW_SEED, mirror=cfg.student.mirror)


def cache_path(cfg: PipelineConfig, data: Dataset, teacher_key: str, cache_dir: Path) -> Path:
    return cache_dir / f"{logits_key(cfg, data, teacher_key)[:16]}.pt"


def cached(cfg: PipelineConfig, data: Dataset, teacher_key: str, cache_dir: Path) -> Views | None:
    """The views and the teacher's logits on them from the cache, where they are there for this teacher."""
    views = view_set(cfg, data)
    path = cache_path(cfg, data, teacher_key, cache_dir)
    expected = (views.count, len(data.train_x), len(data.labels))
    if path.is_file():
        logits = torch.load(path, weights_only=True)
        if isinstance(logits, torch.Tensor) and logits.shape == expected:
            return Views(data.train_x, data.train_y, views, logits, logits_key(cfg, data, teacher_key))
    return None


def store(cfg: PipelineConfig, data: Dataset, teacher_key: str, cache_dir: Path, logits: torch.Tensor) -> Views:
    """Cache the teacher's logits (atomically: a temp file renamed) and return the views they score."""
    path = cache_path(cfg, data, teacher_key, cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    torch.save(logits, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    views = view_set(cfg, data)
    return Views(data.train_x, data.train_y, views, logits, logits_key(cfg, data, teacher_key))


def cached_views(cfg: PipelineConfig, data: Dataset, teacher: Teacher, cache_dir: Path) -> Views:
    """The students' views and the teacher's logits on them; computes the logits on a cache miss."""
    hit = cached(cfg, data, teacher.key, cache_dir)
    if hit is not None:
        return hit
    views = view_set(cfg, data)
    source = torch.from_numpy(train_pixels(data)) if teacher.reads_pixels else data.train_x
    return store(cfg, data, teacher.key, cache_dir, teacher_logits(teacher, source, views))
