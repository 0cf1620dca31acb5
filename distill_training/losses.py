"""Student losses as plain functions, and the table that names them: the method a card records.

Every entry of `LOSSES` takes the same arguments, `(student_logits, teacher_logits, labels, cfg)`, so the student
loop runs any of them. Adding a method is one function here and one line in the table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import torch
import torch.nn.functional as F

from distill_training.config import StudentConfig

StudentLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, StudentConfig], torch.Tensor]


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


def hinton_kd(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, cfg: StudentConfig
) -> torch.Tensor:
    """Method `kd`: Hinton, Vinyals and Dean (2015, arXiv:1503.02531), soft teacher targets mixed with the labels.

        L = w · T² · KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - w) · CE(z_s, y)

    with T = `cfg.temperature` and w = `cfg.kd_weight` (`distillation_loss`). Inputs (B, K), (B, K), (B,).
    """
    return distillation_loss(
        student_logits, teacher_logits, labels, temperature=cfg.temperature, kd_weight=cfg.kd_weight
    )


def label_only(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, cfg: StudentConfig
) -> torch.Tensor:
    """Method `none`, the control: cross-entropy with the true labels only; the teacher's logits are ignored.

        L = CE(z_s, y) = -mean_batch log softmax(z_s)_y

    The baseline of Hinton, Vinyals and Dean (2015, arXiv:1503.02531), who compare a distilled net with the same
    net trained on the hard targets alone; here it trains on the same seeds as every other method.
    """
    return F.cross_entropy(student_logits, labels)


# How a student can be trained, by the method name its card records.
LOSSES: Final[dict[str, StudentLoss]] = {
    "kd": hinton_kd,
    "none": label_only,
}
