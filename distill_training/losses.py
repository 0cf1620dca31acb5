"""Distillation losses as plain functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """Knowledge distillation loss of Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network"
    (2015, arXiv:1503.02531).

        L_KD = T² · mean_batch KL(p_T || q_T),  p_T = softmax(z_teacher / T),  q_T = softmax(z_student / T)

    The T² factor keeps the gradient magnitude of the soft term independent of T (its gradients scale as 1/T²).
    Zero when the student's logits equal the teacher's. Inputs (B, K); returns a scalar.
    """
    log_q = F.log_softmax(student_logits / temperature, dim=1)  # (B, K)
    log_p = F.log_softmax(teacher_logits / temperature, dim=1)  # (B, K)
    kl = F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)
    return kl * temperature**2


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float,
    kd_weight: float,
) -> torch.Tensor:
    """Hinton et al. (2015) objective: a weighted sum of the soft term and cross-entropy with the true labels.

        L = w · L_KD(z_s, z_t; T) + (1 - w) · CE(z_s, y)

    With w = 0 this is label-only training (the control).
    """
    hard = F.cross_entropy(student_logits, labels)
    if kd_weight == 0.0:
        return hard
    soft = kd_loss(student_logits, teacher_logits, temperature=temperature)
    return kd_weight * soft + (1.0 - kd_weight) * hard
