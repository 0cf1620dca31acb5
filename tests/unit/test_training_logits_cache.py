"""Teacher logits are computed once per teacher (keyed by its weights) on every fixed view, and reused after."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distill_training import logits_cache
from distill_training.config import DataConfig, PipelineConfig, StudentConfig, TeacherConfig
from distill_training.data import Dataset
from distill_training.export import export_onnx
from distill_training.teachers import ExportedTeacher
from distill_training.train import build_teacher


def teacher_file(cfg: PipelineConfig, data: Dataset, path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return export_onnx(build_teacher(cfg.teacher, data).eval(), data.image_shape, path, opset=18)


def setup(tmp_path: Path, methods: tuple[str, ...] = ("kd",)) -> tuple[PipelineConfig, Dataset, ExportedTeacher]:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 1, 8, 8, generator=gen), torch.randint(0, 3, (20,), generator=gen)
    data = Dataset(x, y, x[:4], y[:4], x[:4], y[:4], [0.0], [1.0], ("a", "b", "c"), "f" * 64)
    cfg = PipelineConfig(
        data=DataConfig(labels=data.labels),
        teacher=TeacherConfig(width=2, hidden=4),
        student=StudentConfig(method="kd", methods=methods, views=4),
    )
    return cfg, data, ExportedTeacher(teacher_file(cfg, data, tmp_path / "teacher.onnx"))


def test_logits_are_computed_once_per_view_then_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, data, teacher = setup(tmp_path, methods=("kd", "consistent"))
    views = logits_cache.cached_views(cfg, data, teacher, tmp_path / "cache")
    assert views.views.count == 4 and views.logits.shape == (4, 20, 3)
    torch.testing.assert_close(views.logits[0], teacher.logits(data.train_x))  # view 0: the image itself
    torch.testing.assert_close(views.logits[1], teacher.logits(data.train_x.flip(3)))  # view 1: its mirror

    def no_recompute(*args: object, **kwargs: object) -> torch.Tensor:
        raise AssertionError("logits recomputed although cached")

    monkeypatch.setattr(logits_cache, "teacher_logits", no_recompute)
    again = logits_cache.cached_views(cfg, data, teacher, tmp_path / "cache")
    assert again.key == views.key
    torch.testing.assert_close(again.logits, views.logits)


def test_without_consistent_teaching_only_the_image_and_its_mirror_are_scored(tmp_path: Path) -> None:
    cfg, data, teacher = setup(tmp_path, methods=("kd", "dkd"))
    assert logits_cache.cached_views(cfg, data, teacher, tmp_path / "cache").logits.shape == (2, 20, 3)


def test_a_new_teacher_gets_new_logits(tmp_path: Path) -> None:
    cfg, data, teacher = setup(tmp_path)
    first = logits_cache.cached_views(cfg, data, teacher, tmp_path / "cache")
    other = ExportedTeacher(teacher_file(cfg, data, tmp_path / "other.onnx", seed=1))
    second = logits_cache.cached_views(cfg, data, other, tmp_path / "cache")
    assert second.key != first.key and not torch.allclose(second.logits, first.logits)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2
