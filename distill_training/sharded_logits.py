"""The teacher's logits on the students' views under torchrun: every rank scores its block of the training
images and rank 0 merges the blocks into the cache file one process writes (`logits_cache`), so that the
students that follow read the same file either way.

The other ranks get the teacher from rank 0 (the ONNX file's bytes, a few megabytes), so they need no shared
disk; where rank 0 finds the logits cached, no rank computes anything.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from distill_training import distributed, logits_cache
from distill_training.config import PipelineConfig
from distill_training.data import Dataset
from distill_training.distributed import World
from distill_training.logits_cache import Views
from distill_training.teachers import ExportedTeacher
from modelrepo.layout import sha256_file


def sharded_views(
    cfg: PipelineConfig, data: Dataset, world: World, teacher_file: Path | None, cache_dir: Path
) -> Views | None:
    """Rank 0 passes the served teacher's ONNX file and gets the views with their logits; the other ranks pass
    None, score their block, and get None."""
    hit = None
    if teacher_file is not None:
        hit = logits_cache.cached(cfg, data, sha256_file(teacher_file), cache_dir)
    model = distributed.broadcast(world, teacher_file.read_bytes() if teacher_file and hit is None else None)
    if model is None:
        return hit
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "teacher.onnx"
        path.write_bytes(model)
        teacher = ExportedTeacher(path, intra_op_threads=torch.get_num_threads())
        views = logits_cache.view_set(cfg, data)
        rows = distributed.rows_of(world, len(data.train_x))
        blocks = distributed.gather(world, logits_cache.teacher_logits(teacher, data.train_x, views, rows))
    if not world.main:
        return None
    return logits_cache.store(cfg, data, teacher.key, cache_dir, torch.cat(blocks, dim=1))
