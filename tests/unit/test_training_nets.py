"""The architecture tables: every entry builds a net from (B, C, H, W) to (B, K), exports to ONNX that
onnxruntime runs as PyTorch does; an ensemble is the average of its members, in PyTorch and in ONNX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from distill_training.config import ConfigError, ExportConfig, StudentConfig, TeacherConfig, load_config
from distill_training.data import Dataset
from distill_training.export import export_onnx, onnx_logits, session, validate
from distill_training.nets import STUDENTS, TEACHERS, Ensemble, count_parameters
from distill_training.search import candidate_config
from distill_training.train import build_student, build_teacher

IMAGES = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def tiny_dataset(side: int = 8) -> Dataset:
    x, y = torch.zeros(4, 1, side, side), torch.zeros(4, dtype=torch.int64)
    return Dataset(x, y, x, y, x, y, [0.0], [1.0], ("a", "b", "c"), "f" * 64)


def teacher(architecture: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_teacher(TeacherConfig(architecture=architecture, width=2, hidden=4), tiny_dataset(28)).eval()


def student(architecture: str) -> nn.Module:
    torch.manual_seed(0)
    return build_student(
        StudentConfig(architecture=architecture, hidden=(4,), channels=(2, 4), width=2), tiny_dataset(28)
    )


@pytest.mark.parametrize("architecture", TEACHERS)
def test_every_teacher_architecture_maps_images_to_logits(architecture: str) -> None:
    model = build_teacher(TeacherConfig(architecture=architecture, width=2, hidden=4), tiny_dataset())
    assert model.eval()(torch.zeros(5, 1, 8, 8)).shape == (5, 3)


@pytest.mark.parametrize("architecture", STUDENTS)
def test_every_student_architecture_maps_images_to_logits(architecture: str) -> None:
    cfg = StudentConfig(architecture=architecture, hidden=(4,), channels=(2, 4, 4), width=2, depth=2)
    assert build_student(cfg, tiny_dataset()).eval()(torch.zeros(5, 1, 8, 8)).shape == (5, 3)


@pytest.mark.parametrize(
    ("architecture", "nets"), [*((a, "teacher") for a in TEACHERS), *((a, "student") for a in STUDENTS)]
)
def test_every_architecture_exports_to_onnx_that_matches_pytorch(architecture: str, nets: str, tmp_path: Path) -> None:
    model = teacher(architecture) if nets == "teacher" else student(architecture)
    path = export_onnx(model, (1, 28, 28), tmp_path / "m.onnx", opset=ExportConfig().opset)
    check = validate(path, model, IMAGES, ExportConfig())
    assert check.max_abs_diff < 1e-4 and check.agreement == 1.0
    (batch_of_one,) = session(path).run(None, {"input": IMAGES[:1].numpy()})
    assert batch_of_one.shape == (1, 3)


def test_the_ensemble_is_the_average_of_its_members_in_pytorch_and_in_onnx(tmp_path: Path) -> None:
    members = [teacher("conv", seed=0), teacher("conv", seed=1), teacher("resnet", seed=2)]
    ensemble = Ensemble(members).eval()
    with torch.no_grad():
        expected = torch.stack([m(IMAGES) for m in members]).mean(0)
        torch.testing.assert_close(ensemble(IMAGES), expected)
    assert count_parameters(ensemble) == sum(count_parameters(m) for m in members)
    opset = ExportConfig().opset
    ensemble_out = onnx_logits(
        session(export_onnx(ensemble, (1, 28, 28), tmp_path / "e.onnx", opset=opset)), IMAGES.numpy()
    )
    member_outs = [
        onnx_logits(session(export_onnx(m, (1, 28, 28), tmp_path / f"m{i}.onnx", opset=opset)), IMAGES.numpy())
        for i, m in enumerate(members)
    ]
    np.testing.assert_allclose(ensemble_out, np.mean(member_outs, axis=0), rtol=1e-5, atol=1e-5)


def test_the_mobilenet_sizes_are_width_and_depth() -> None:
    cfg = candidate_config(StudentConfig(), "mobilenet:8x3")
    assert (cfg.architecture, cfg.width, cfg.depth) == ("mobilenet", 8, 3)
    deeper = build_student(cfg, tiny_dataset(28))
    shallower = build_student(candidate_config(StudentConfig(), "mobilenet:8x1"), tiny_dataset(28))
    depthwise = [m for m in deeper.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 3 and count_parameters(deeper) > count_parameters(shallower)


def test_the_architecture_is_a_setting_and_an_unknown_one_names_the_known() -> None:
    cfg = load_config("quick", overrides={"student.architecture": "mlp", "teacher.architecture": "resnet"})
    assert (cfg.teacher.architecture, cfg.student.architecture) == ("resnet", "mlp")
    with pytest.raises(ConfigError, match=r"student\.architecture 'vit'; known: mlp, cnn, mobilenet"):
        build_student(StudentConfig(architecture="vit"), tiny_dataset())
    with pytest.raises(ConfigError, match=r"teacher\.architecture 'vit'; known: conv, resnet"):
        build_teacher(TeacherConfig(architecture="vit"), tiny_dataset())
