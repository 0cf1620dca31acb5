"""The architecture tables: every entry builds a net from (B, C, H, W) to (B, K); the config names the entry."""

from __future__ import annotations

import pytest
import torch

from distill_training.config import ConfigError, StudentConfig, TeacherConfig, load_config
from distill_training.data import Dataset
from distill_training.nets import STUDENTS, TEACHERS
from distill_training.train import build_student, build_teacher


def tiny_dataset() -> Dataset:
    x, y = torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.int64)
    return Dataset(x, y, x, y, x, y, [0.0], [1.0], ("a", "b", "c"), "f" * 64)


@pytest.mark.parametrize("architecture", TEACHERS)
def test_every_teacher_architecture_maps_images_to_logits(architecture: str) -> None:
    model = build_teacher(TeacherConfig(architecture=architecture, width=2, hidden=4), tiny_dataset())
    assert model.eval()(torch.zeros(5, 1, 8, 8)).shape == (5, 3)


@pytest.mark.parametrize("architecture", STUDENTS)
def test_every_student_architecture_maps_images_to_logits(architecture: str) -> None:
    model = build_student(StudentConfig(architecture=architecture, hidden=(4,)), tiny_dataset())
    assert model.eval()(torch.zeros(5, 1, 8, 8)).shape == (5, 3)


def test_the_architecture_is_a_setting_and_an_unknown_one_names_the_known() -> None:
    cfg = load_config("quick", overrides={"student.architecture": "mlp"})
    assert (cfg.teacher.architecture, cfg.student.architecture) == ("conv", "mlp")
    with pytest.raises(ConfigError, match=r"student\.architecture 'cnn'; known: mlp"):
        build_student(StudentConfig(architecture="cnn"), tiny_dataset())
    with pytest.raises(ConfigError, match=r"teacher\.architecture 'vit'; known: conv"):
        build_teacher(TeacherConfig(architecture="vit"), tiny_dataset())
