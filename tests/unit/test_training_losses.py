"""The distillation losses and the method table: properties where the formula does not matter, stored values
where it does."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from distill_training.config import StudentConfig
from distill_training.losses import ALL_VIEWS, CONTROL, LOSSES, distillation_loss, dkd_loss, kd_loss

STUDENT = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]])
TEACHER = torch.tensor([[3.0, 2.0, 1.0], [0.0, 1.0, 0.0]])
LABELS = torch.tensor([2, 1])
# Computed by hand (numpy, float64): T² · mean_b sum_k p_k log(p_k / q_k), p = softmax(t/2), q = softmax(s/2).
EXPECTED_KD_T2 = 0.8181074784760219
# Computed by hand (numpy, float64) for T = 4, α = 1, β = 8: per row, b = [p_y, 1 - p_y] and p̂ = softmax of the
# non-target logits / T, for teacher and student; T² · mean_b (KL(b_t || b_s) + 8 · KL(p̂_t || p̂_s)).
EXPECTED_DKD_T4 = 3.0977096833340045


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


def test_dkd_loss_matches_stored_hand_computed_value() -> None:
    value = dkd_loss(STUDENT, TEACHER, LABELS, alpha=1.0, beta=8.0, temperature=4.0)
    assert value.item() == pytest.approx(EXPECTED_DKD_T4, rel=1e-5)


def test_dkd_loss_is_zero_when_student_equals_teacher_even_when_confident() -> None:
    logits = torch.randn(16, 10, generator=torch.Generator().manual_seed(0)) * 30  # probabilities of 1 and 0
    labels = logits.argmax(1)
    value = dkd_loss(logits, logits.clone(), labels, alpha=1.0, beta=8.0, temperature=1.0)
    assert value.item() == pytest.approx(0.0, abs=1e-5)


def test_dkd_weights_its_target_and_non_target_terms_separately() -> None:
    def dkd(alpha: float, beta: float) -> float:
        return dkd_loss(STUDENT, TEACHER, LABELS, alpha=alpha, beta=beta, temperature=4.0).item()

    tckd, nckd = dkd(1.0, 0.0), dkd(0.0, 1.0)
    assert tckd > 0 and nckd > 0
    assert dkd(2.0, 3.0) == pytest.approx(2 * tckd + 3 * nckd, rel=1e-5)
    assert dkd(1.0, 8.0) == pytest.approx(EXPECTED_DKD_T4, rel=1e-5)


def test_dkd_non_target_term_ignores_the_target_logit() -> None:
    """NCKD compares the distributions among the non-target classes only: moving the target's logit moves TCKD."""
    moved = STUDENT.clone()
    moved[0, 2] += 5.0  # row 0's label is 2
    nckd = [dkd_loss(s, TEACHER, LABELS, alpha=0.0, beta=1.0, temperature=4.0).item() for s in (STUDENT, moved)]
    tckd = [dkd_loss(s, TEACHER, LABELS, alpha=1.0, beta=0.0, temperature=4.0).item() for s in (STUDENT, moved)]
    assert nckd[0] == pytest.approx(nckd[1], rel=1e-5) and tckd[0] != pytest.approx(tckd[1], rel=1e-3)


def test_the_dkd_method_adds_decoupled_kd_to_cross_entropy() -> None:
    cfg = StudentConfig(dkd_alpha=0.5, dkd_beta=2.0, dkd_temperature=3.0)
    loss = LOSSES["dkd"](STUDENT, TEACHER, LABELS, cfg).item()
    soft = dkd_loss(STUDENT, TEACHER, LABELS, alpha=0.5, beta=2.0, temperature=3.0).item()
    assert loss == pytest.approx(F.cross_entropy(STUDENT, LABELS).item() + soft, rel=1e-6)


def test_consistent_teaching_is_function_matching_without_labels() -> None:
    cfg = StudentConfig(consistent_temperature=1.0)
    loss = LOSSES["consistent"](STUDENT, TEACHER, LABELS, cfg).item()
    assert loss == pytest.approx(kd_loss(STUDENT, TEACHER, temperature=1.0).item(), rel=1e-6)
    assert LOSSES["consistent"](STUDENT, TEACHER, torch.tensor([0, 0]), cfg).item() == pytest.approx(loss, rel=1e-6)
    assert LOSSES["consistent"](TEACHER, TEACHER.clone(), LABELS, cfg).item() == pytest.approx(0.0, abs=1e-6)


def test_consistent_teaching_alone_trains_on_every_view() -> None:
    assert frozenset({"consistent"}) == ALL_VIEWS and CONTROL == "none" and CONTROL not in ALL_VIEWS


@pytest.mark.parametrize("method", LOSSES)
def test_every_method_has_finite_gradients_on_extreme_logits(method: str) -> None:
    """Confident nets give logits far apart: no method may turn them into inf or nan."""
    gen = torch.Generator().manual_seed(1)
    student = (torch.randn(8, 10, generator=gen) * 50).requires_grad_(True)
    teacher = torch.randn(8, 10, generator=gen) * 50
    value = LOSSES[method](student, teacher, torch.randint(0, 10, (8,), generator=gen), StudentConfig())
    value.backward()
    assert torch.isfinite(value) and student.grad is not None and torch.isfinite(student.grad).all()
