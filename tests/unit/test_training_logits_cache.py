"""Teacher logits are computed once per teacher checkpoint (keyed by its hash) and reused after that."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distill_training import logits_cache
from distill_training.config import DataConfig, PipelineConfig, StudentConfig, TeacherConfig
from distill_training.data import Dataset
from distill_training.train import build_teacher


def setup(tmp_path: Path) -> tuple[PipelineConfig, Dataset, Path]:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 1, 8, 8, generator=gen), torch.randint(0, 3, (20,), generator=gen)
    data = Dataset(x, y, x[:4], y[:4], x[:4], y[:4], [0.0], [1.0], ("a", "b", "c"), "f" * 64)
    cfg = PipelineConfig(
        data=DataConfig(labels=data.labels),
        teacher=TeacherConfig(width=2, hidden=4),
        student=StudentConfig(hflip_view=True),
    )
    weights = tmp_path / "teacher.pt"
    torch.manual_seed(0)
    torch.save(build_teacher(cfg.teacher, data).state_dict(), weights)
    return cfg, data, weights


def test_logits_are_computed_once_then_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, data, weights = setup(tmp_path)
    (x, y, logits), key = logits_cache.cached_views(cfg, data, weights, tmp_path / "cache")
    assert x.shape == (40, 1, 8, 8) and y.shape == (40,) and logits.shape == (40, 3)
    torch.testing.assert_close(x[20:], data.train_x.flip(3))  # the mirrored view follows the original

    def no_recompute(*args: object, **kwargs: object) -> torch.Tensor:
        raise AssertionError("logits recomputed although cached")

    monkeypatch.setattr(logits_cache, "_teacher_logits", no_recompute)
    (_, _, again), key_again = logits_cache.cached_views(cfg, data, weights, tmp_path / "cache")
    assert key_again == key
    torch.testing.assert_close(again, logits)


def test_a_new_teacher_checkpoint_gets_new_logits(tmp_path: Path) -> None:
    cfg, data, weights = setup(tmp_path)
    _, key = logits_cache.cached_views(cfg, data, weights, tmp_path / "cache")
    state = torch.load(weights, weights_only=True)
    state["head.5.bias"] += 1.0
    torch.save(state, weights)
    _, new_key = logits_cache.cached_views(cfg, data, weights, tmp_path / "cache")
    assert new_key != key and len(list((tmp_path / "cache").glob("*.pt"))) == 2
