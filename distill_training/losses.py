"""Student losses as plain functions, and the table that names them: the method a card records.

Every entry of `LOSSES` takes the same arguments, `(student_logits, teacher_logits, labels, cfg)`, so the student
loop runs any of them. Adding a method is one function here and one line in the table (and in `ALL_VIEWS` if it
trains on every teacher-scored view rather than the image and its mirror).
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


def dkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    alpha: float,
    beta: float,
    temperature: float,
) -> torch.Tensor:
    """Decoupled knowledge distillation of Zhao, Cui, Song, Qiu and Liang, "Decoupled Knowledge Distillation"
    (CVPR 2022, arXiv:2203.08679): the KD term split into a target-class and a non-target-class part, weighted
    separately (classical KD ties the non-target part to the teacher's confidence in the target).

        b = [p_y, 1 - p_y]            the target class against all others, p = softmax(z / T)
        p̂ = softmax(z_{k != y} / T)   the distribution among the non-target classes
        L_DKD = T² · (α · KL(b_teacher || b_student) + β · KL(p̂_teacher || p̂_student))

    Zero when the student's logits equal the teacher's. Inputs (B, K), (B, K), (B,); returns a scalar.
    """
    target = F.one_hot(labels, student_logits.shape[1]).bool()  # (B, K)

    def binary(logits: torch.Tensor) -> torch.Tensor:
        """log [p_y, 1 - p_y] (B, 2), in log space so that a confident net does not give log(0)."""
        log_p = F.log_softmax(logits / temperature, dim=1)
        others = log_p.masked_fill(target, float("-inf")).logsumexp(dim=1)
        return torch.stack([log_p[target], others], dim=1)

    def non_target(logits: torch.Tensor) -> torch.Tensor:
        """log p̂ (B, K): the target's logit pushed down so far that its probability is exactly 0."""
        return F.log_softmax(logits / temperature - 1000.0 * target, dim=1)

    tckd = F.kl_div(binary(student_logits), binary(teacher_logits), reduction="batchmean", log_target=True)
    nckd = F.kl_div(non_target(student_logits), non_target(teacher_logits), reduction="batchmean", log_target=True)
    return temperature**2 * (alpha * tckd + beta * nckd)


def decoupled_kd(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, cfg: StudentConfig
) -> torch.Tensor:
    """Method `dkd`: Zhao et al. (CVPR 2022, arXiv:2203.08679), decoupled KD added to cross-entropy.

        L = CE(z_s, y) + T² · (α · TCKD + β · NCKD)

    with T = `cfg.dkd_temperature`, α = `cfg.dkd_alpha`, β = `cfg.dkd_beta` (`dkd_loss`; the paper's CIFAR-100
    setting is T = 4, α = 1, β = 8). Inputs (B, K), (B, K), (B,).
    """
    soft = dkd_loss(
        student_logits,
        teacher_logits,
        labels,
        alpha=cfg.dkd_alpha,
        beta=cfg.dkd_beta,
        temperature=cfg.dkd_temperature,
    )
    return F.cross_entropy(student_logits, labels) + soft


def function_matching(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, cfg: StudentConfig
) -> torch.Tensor:
    """Method `consistent`: consistent teaching, or function matching, of Beyer, Zhai, Royer, Markeeva, Anil and
    Kolesnikov, "Knowledge distillation: A good teacher is patient and consistent" (CVPR 2022,
    arXiv:2106.05237): the student matches the teacher's function on the very view it is shown, with no label
    term, over many augmented views (`views`: every cached shift and flip, `losses.ALL_VIEWS`).

        L = T² · KL(softmax(z_t / T) || softmax(z_s / T)),  T = `cfg.consistent_temperature` (the paper: 1)

    Inputs (B, K), (B, K), (B,); the labels are not used.
    """
    return kd_loss(student_logits, teacher_logits, temperature=cfg.consistent_temperature)


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
    "dkd": decoupled_kd,
    "consistent": function_matching,
    "none": label_only,
}
CONTROL: Final = "none"  # the label-only control every other method is compared with
# Methods whose students train on every cached view (random shifts and flips, each scored by the teacher);
# the others train on the image and its mirror.
ALL_VIEWS: Final = frozenset({"consistent"})
