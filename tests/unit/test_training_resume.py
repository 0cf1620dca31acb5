"""An interrupted teacher run resumes from its last epoch checkpoint and ends where an uninterrupted run would."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from distill_training import train
from distill_training.config import DataConfig, PipelineConfig, TeacherConfig
from distill_training.data import Dataset
from distill_training.staleness import read_meta


def tiny_setup() -> tuple[PipelineConfig, Dataset]:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 1, 8, 8, generator=gen), torch.randint(0, 3, (96,), generator=gen)
    data = Dataset(x, y, x[:16], y[:16], x[:16], y[:16], [0.0], [1.0], ("a", "b", "c"), "f" * 64)
    teacher = TeacherConfig(width=4, hidden=8, epochs=3, batch_size=32, precision="fp32", channels_last=False)
    return PipelineConfig(data=DataConfig(labels=("a", "b", "c")), teacher=teacher), data


def test_interrupted_teacher_resumes_to_the_same_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, data = tiny_setup()
    reference = torch.load(train.train_teacher(cfg.teacher, cfg.data, data, tmp_path / "straight"), weights_only=True)

    real_accuracy, calls = train.accuracy, []

    def interrupt_in_epoch_two(*args: torch.Tensor) -> float:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_accuracy(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(train, "accuracy", interrupt_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train.train_teacher(cfg.teacher, cfg.data, data, tmp_path / "resumed")
    monkeypatch.setattr(train, "accuracy", real_accuracy)
    assert torch.load(tmp_path / "resumed" / train.CHECKPOINT, weights_only=True)["epoch"] == 1

    resumed = torch.load(train.train_teacher(cfg.teacher, cfg.data, data, tmp_path / "resumed"), weights_only=True)
    assert resumed.keys() == reference.keys()
    for key in reference:
        torch.testing.assert_close(resumed[key], reference[key])


def test_finished_teacher_is_not_retrained(tmp_path: Path) -> None:
    cfg, data = tiny_setup()
    path = train.train_teacher(cfg.teacher, cfg.data, data, tmp_path)
    mtime = path.stat().st_mtime_ns
    assert train.train_teacher(cfg.teacher, cfg.data, data, tmp_path) == path and path.stat().st_mtime_ns == mtime


def test_a_teacher_behind_its_deadline_is_shortened_to_its_floor(tmp_path: Path) -> None:
    cfg, data = tiny_setup()
    teacher = replace(cfg.teacher, epochs=4, min_epochs=2)
    path = train.train_teacher(teacher, cfg.data, data, tmp_path, deadline=time.time())  # already late
    meta = read_meta(path.parent)
    assert (meta["epochs"], meta["planned_epochs"], len(meta["history"])) == (2, 4, 2)


def test_a_teacher_with_time_to_spare_trains_every_planned_epoch(tmp_path: Path) -> None:
    cfg, data = tiny_setup()
    path = train.train_teacher(cfg.teacher, cfg.data, data, tmp_path, deadline=time.time() + 3600)
    assert len(read_meta(path.parent)["history"]) == cfg.teacher.epochs


def test_the_teacher_is_fitted_to_its_deadline_after_every_epoch_both_ways() -> None:
    cfg, _ = tiny_setup()
    teacher = replace(cfg.teacher, epochs=10, min_epochs=3)
    fit = train.Fit(torch.nn.Linear(2, 2), lr=0.1, weight_decay=0.0, epochs=10, steps_per_epoch=4)
    fit.end_epoch(0.5)
    train._keep_to(fit, time.time() + 4.5, 1.0, teacher, "t")  # four more epochs fit
    assert fit.epochs == 5
    train._keep_to(fit, time.time() - 10, 1.0, teacher, "t")  # late: never below the floor
    assert fit.epochs == 3
    train._keep_to(fit, time.time() + 100, 1.0, teacher, "t")  # faster again: back to the plan, not past it
    assert fit.epochs == 10
