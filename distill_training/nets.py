"""The architectures, and the tables that name them: the architecture a card records.

Every net takes the same normalised input (B, C, H, W) and returns logits (B, K), so a client sends the same
tensor to the teacher and the student. `TEACHERS` and `STUDENTS` map a name (`teacher.architecture`,
`student.architecture`) to a builder `(cfg, image_shape, n_classes) -> nn.Module`. Adding an architecture is
one class or function here and one line in its table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import torch
from torch import nn

from distill_training.config import StudentConfig, TeacherConfig

ImageShape = tuple[int, int, int]  # (C, H, W)
TeacherBuilder = Callable[[TeacherConfig, ImageShape, int], nn.Module]
StudentBuilder = Callable[[StudentConfig, ImageShape, int], nn.Module]


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class ConvTeacher(nn.Module):
    """conv(w) conv(w) pool, conv(2w) conv(2w) pool, dense(hidden), dense(K); BatchNorm and dropout.

    Most of its parameters sit in the dense head (cheap in MACs), most of its compute in the two conv stages.
    """

    def __init__(self, image_shape: ImageShape, n_classes: int, *, width: int, hidden: int, dropout: float) -> None:
        super().__init__()
        c, h, w = image_shape
        self.features = nn.Sequential(
            *_conv_bn_relu(c, width),
            *_conv_bn_relu(width, width),
            nn.MaxPool2d(2),  # (B, w, H/2, W/2)
            *_conv_bn_relu(width, 2 * width),
            *_conv_bn_relu(2 * width, 2 * width),
            nn.MaxPool2d(2),  # (B, 2w, H/4, W/4)
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(2 * width * (h // 4) * (w // 4), hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.features(x))  # (B, K)
        return logits


class MLPStudent(nn.Module):
    """Flatten, then dense layers of the given hidden sizes with ReLU, then a dense layer to K logits."""

    def __init__(self, image_shape: ImageShape, n_classes: int, *, hidden: tuple[int, ...]) -> None:
        super().__init__()
        c, h, w = image_shape
        layers: list[nn.Module] = [nn.Flatten()]  # (B, C*H*W)
        width = c * h * w
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
            width = size
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.net(x)  # (B, K)
        return logits


def conv_teacher(cfg: TeacherConfig, image_shape: ImageShape, n_classes: int) -> nn.Module:
    return ConvTeacher(image_shape, n_classes, width=cfg.width, hidden=cfg.hidden, dropout=cfg.dropout)


def mlp_student(cfg: StudentConfig, image_shape: ImageShape, n_classes: int) -> nn.Module:
    return MLPStudent(image_shape, n_classes, hidden=tuple(cfg.hidden))


TEACHERS: Final[dict[str, TeacherBuilder]] = {
    "conv": conv_teacher,
}
STUDENTS: Final[dict[str, StudentBuilder]] = {
    "mlp": mlp_student,
}


def set_memory_format(model: nn.Module, memory_format: torch.memory_format) -> nn.Module:
    """channels_last speeds up CPU convolutions in training; export and inference use the contiguous format."""
    return model.to(memory_format=memory_format)  # type: ignore[call-overload,no-any-return]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
