"""The distillation losses and the method table: properties where the formula does not matter, stored values
where it does."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from distill_training.config import StudentConfig
from distill_training.losses import LOSSES, distillation_loss, kd_loss

STUDENT = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]])
TEACHER = torch.tensor([[3.0, 2.0, 1.0], [0.0, 1.0, 0.0]])
# Computed by hand (numpy, float64): T² · mean_b sum_k p_k log(p_k / q_k), p = softmax(t/2), q = softmax(s/2).
EXPECTED_KD_T2 = 0.8181074784760219


def test_kd_loss_is_zero_when_student_equals_teacher() -> None:
    logits = torch.randn(16, 10, generator=torch.Generator().manual_seed(0)) * 5
    for temperature in (1.0, 2.0, 4.0):
        assert kd_loss(logits, logits.clone(), temperature=temperature).item() == pytest.approx(0.0, abs=1e-6)


def test_kd_loss_matches_stored_hand_computed_value() -> None:
    assert kd_loss(STUDENT, TEACHER, temperature=2.0).item() == pytest.approx(EXPECTED_KD_T2, rel=1e-5)


def test_kd_loss_carries_the_temperature_squared_factor() -> None:
    for temperature in (1.0, 3.0, 8.0):
        log_q = F.log_softmax(STUDENT / temperature, dim=1)
        p = F.softmax(TEACHER / temperature, dim=1)
        plain_kl = (p * (p.log() - log_q)).sum(dim=1).mean()
        loss = kd_loss(STUDENT, TEACHER, temperature=temperature)
        assert loss.item() == pytest.approx(temperature**2 * plain_kl.item(), rel=1e-5)


def test_kd_loss_is_positive_and_differentiable() -> None:
    student = STUDENT.clone().requires_grad_(True)
    loss = kd_loss(student, TEACHER, temperature=2.0)
    loss.backward()
    assert loss.item() > 0
    assert student.grad is not None and student.grad.abs().sum().item() > 0


def test_distillation_loss_mixes_soft_and_hard_terms() -> None:
    labels = torch.tensor([2, 1])
    hard = F.cross_entropy(STUDENT, labels).item()
    soft = kd_loss(STUDENT, TEACHER, temperature=2.0).item()
    mixed = distillation_loss(STUDENT, TEACHER, labels, temperature=2.0, kd_weight=0.25).item()
    assert mixed == pytest.approx(0.25 * soft + 0.75 * hard, rel=1e-6)
    control = distillation_loss(STUDENT, TEACHER, labels, temperature=2.0, kd_weight=0.0).item()
    assert control == pytest.approx(hard, rel=1e-6)


def test_the_kd_method_is_hintons_objective_with_the_configured_temperature_and_weight() -> None:
    labels = torch.tensor([2, 1])
    loss = LOSSES["kd"](STUDENT, TEACHER, labels, StudentConfig(temperature=3.0, kd_weight=0.25))
    expected = distillation_loss(STUDENT, TEACHER, labels, temperature=3.0, kd_weight=0.25)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_the_control_method_is_cross_entropy_and_ignores_the_teacher() -> None:
    labels, cfg = torch.tensor([2, 1]), StudentConfig()
    hard = F.cross_entropy(STUDENT, labels).item()
    assert LOSSES["none"](STUDENT, TEACHER, labels, cfg).item() == pytest.approx(hard, rel=1e-6)
    assert LOSSES["none"](STUDENT, -5 * TEACHER, labels, cfg).item() == pytest.approx(hard, rel=1e-6)


@pytest.mark.parametrize("method", LOSSES)
def test_every_method_gives_a_differentiable_scalar_and_documents_its_formula_and_paper(method: str) -> None:
    loss = LOSSES[method]
    student = STUDENT.clone().requires_grad_(True)
    value = loss(student, TEACHER, torch.tensor([2, 1]), StudentConfig())
    value.backward()
    assert value.ndim == 0 and student.grad is not None and student.grad.abs().sum().item() > 0
    doc = loss.__doc__ or ""
    assert "L =" in doc and re.search(r"\b(19|20)\d\d\b", doc), f"{loss.__name__}: formula and paper (year)"
