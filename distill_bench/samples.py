"""Real test-set images for benchmarks and for trying the API by hand (`python -m distill_bench samples`)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from modelrepo.dataset import DEFAULT_DATA_DIR, FASHION_MNIST_LABELS, load_test_split


def load_test_images(data_dir: str = DEFAULT_DATA_DIR, count: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` test images (count, H, W) uint8 and their labels (count,)."""
    images, labels = load_test_split(data_dir)
    return images[:count], labels[:count]


def write_pngs(out: Path, data_dir: str = DEFAULT_DATA_DIR, count: int = 8) -> list[Path]:
    """Save test images as `<index>-<label>.png` (e.g. `0-ankle-boot.png`)."""
    out.mkdir(parents=True, exist_ok=True)
    images, labels = load_test_images(data_dir, count)
    paths = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        slug = re.sub(r"[^a-z]+", "-", FASHION_MNIST_LABELS[label].lower()).strip("-")
        path = out / f"{i}-{slug}.png"
        Image.fromarray(image).save(path)  # (28, 28) uint8: a greyscale ("L") PNG
        paths.append(path)
    return paths
