"""The two architectures. Both take the same normalised input (B, C, H, W) and return logits (B, K).

The teacher puts most of its parameters in a dense head (cheap in MACs) and its compute in two conv stages; the
student is an MLP that flattens internally, so a client sends the same tensor to both.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class Teacher(nn.Module):
    """conv(w) conv(w) pool, conv(2w) conv(2w) pool, dense(hidden), dense(K); BatchNorm and dropout."""

    def __init__(
        self, image_shape: tuple[int, int, int], n_classes: int, *, width: int, hidden: int, dropout: float
    ) -> None:
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


class Student(nn.Module):
    """Flatten, then dense layers of the given hidden sizes with ReLU, then a dense layer to K logits."""

    def __init__(self, image_shape: tuple[int, int, int], n_classes: int, *, hidden: tuple[int, ...]) -> None:
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


def set_memory_format(model: nn.Module, memory_format: torch.memory_format) -> nn.Module:
    """channels_last speeds up CPU convolutions in training; export and inference use the contiguous format."""
    return model.to(memory_format=memory_format)  # type: ignore[call-overload,no-any-return]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
