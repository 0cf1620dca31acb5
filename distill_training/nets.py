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


def _conv_bn_relu(cin: int, cout: int, *, stride: int = 1, groups: int = 1, kernel: int = 3) -> list[nn.Module]:
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _strided(size: int, stride: int) -> int:
    """The side of a map after a padded 3x3 convolution of this stride."""
    return (size - 1) // stride + 1


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


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a skip connection (He et al., "Deep Residual Learning for Image
    Recognition", CVPR 2016); a 1x1 projection on the skip where the block changes width or strides."""

    def __init__(self, cin: int, cout: int, *, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn_relu(cin, cout, stride=stride),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.relu(self.body(x) + self.skip(x))
        return out


class ResNetTeacher(nn.Module):
    """A small ResNet: a 3x3 stem of w channels, then three stages of `blocks` residual blocks at w, 2w and 4w
    channels (the second and third stride 2: 28x28 -> 14x14 -> 7x7), global average pooling, dropout, a dense
    layer to K logits."""

    def __init__(self, image_shape: ImageShape, n_classes: int, *, width: int, blocks: int, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = _conv_bn_relu(image_shape[0], width)
        cin = width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for block in range(blocks):
                layers.append(ResidualBlock(cin, cout, stride=2 if stage > 0 and block == 0 else 1))
                cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.features(x))  # (B, K)
        return logits


ENSEMBLE: Final = "ensemble"  # the architecture an ensemble's card records (the card lists its members)


class Ensemble(nn.Module):
    """Teachers averaged: the mean of the members' logits (the geometric mean of their probabilities, up to
    normalisation), so the ensemble is one net from (B, C, H, W) to (B, K) like any other."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(dim=0)  # (M, B, K) -> (B, K)


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


class CNNStudent(nn.Module):
    """3x3 convolutions of the given widths with BatchNorm and ReLU, the first two with stride 2 (28x28 -> 7x7:
    at batch 1 the cost is per op, so strides beat pooling), then a dense layer from the flattened map."""

    def __init__(self, image_shape: ImageShape, n_classes: int, *, channels: tuple[int, ...]) -> None:
        super().__init__()
        c, h, w = image_shape
        layers: list[nn.Module] = []
        for index, width in enumerate(channels):
            stride = 2 if index < 2 else 1
            layers += _conv_bn_relu(c, width, stride=stride)
            c, h, w = width, _strided(h, stride), _strided(w, stride)
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * h * w, n_classes))  # (B, C*H*W) -> (B, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.net(x)  # (B, K)
        return logits


class MobileNetStudent(nn.Module):
    """MobileNet-style (Howard et al., "MobileNets", 2017): a strided 3x3 stem of `width` channels, then `depth`
    depthwise-separable blocks (3x3 depthwise, 1x1 pointwise, each with BatchNorm and ReLU); the first block
    strides 2 and doubles the width (28x28 -> 14x14 -> 7x7), then a dense layer from the flattened map."""

    def __init__(self, image_shape: ImageShape, n_classes: int, *, width: int, depth: int) -> None:
        super().__init__()
        c, h, w = image_shape
        layers: list[nn.Module] = _conv_bn_relu(c, width, stride=2)
        c, h, w = width, _strided(h, 2), _strided(w, 2)
        for block in range(depth):
            stride, cout = (2, 2 * width) if block == 0 else (1, c)
            layers += _conv_bn_relu(c, c, stride=stride, groups=c)  # depthwise
            layers += _conv_bn_relu(c, cout, kernel=1)  # pointwise
            c, h, w = cout, _strided(h, stride), _strided(w, stride)
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * h * w, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.net(x)  # (B, K)
        return logits


def conv_teacher(cfg: TeacherConfig, image_shape: ImageShape, n_classes: int) -> nn.Module:
    return ConvTeacher(image_shape, n_classes, width=cfg.width, hidden=cfg.hidden, dropout=cfg.dropout)


def resnet_teacher(cfg: TeacherConfig, image_shape: ImageShape, n_classes: int) -> nn.Module:
    return ResNetTeacher(image_shape, n_classes, width=cfg.width, blocks=cfg.blocks, dropout=cfg.dropout)


def mlp_student(cfg: StudentConfig, image_shape: ImageShape, n_classes: int) -> nn.Module:
    return MLPStudent(image_shape, n_classes, hidden=tuple(cfg.hidden))


def cnn_student(cfg: StudentConfig, image_shape: ImageShape, n_classes: int) -> nn.Module:
    return CNNStudent(image_shape, n_classes, channels=tuple(cfg.channels))


def mobilenet_student(cfg: StudentConfig, image_shape: ImageShape, n_classes: int) -> nn.Module:
    return MobileNetStudent(image_shape, n_classes, width=cfg.width, depth=cfg.depth)


TEACHERS: Final[dict[str, TeacherBuilder]] = {
    "conv": conv_teacher,
    "resnet": resnet_teacher,
}
STUDENTS: Final[dict[str, StudentBuilder]] = {
    "mlp": mlp_student,
    "cnn": cnn_student,
    "mobilenet": mobilenet_student,
}


def set_memory_format(model: nn.Module, memory_format: torch.memory_format) -> nn.Module:
    """channels_last speeds up CPU convolutions in training; export and inference use the contiguous format."""
    return model.to(memory_format=memory_format)  # type: ignore[call-overload,no-any-return]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
