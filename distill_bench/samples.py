"""Real test-set images for benchmarks and for trying the API by hand (`python -m distill_bench samples`)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def _idx(path: Path, header: int) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: install the Debian package dataset-fashion-mnist")
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)


def load_test_images(data_dir: str = DEFAULT_DATA_DIR, count: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` test images (count, 28, 28) uint8 and their labels (count,)."""
    images = _idx(Path(data_dir) / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = _idx(Path(data_dir) / "t10k-labels-idx1-ubyte.gz", 8)
    return images[:count], labels[:count]


def write_pngs(out: Path, data_dir: str = DEFAULT_DATA_DIR, count: int = 8) -> list[Path]:
    """Save test images as `<index>-<label>.png` (e.g. `0-ankle-boot.png`)."""
    out.mkdir(parents=True, exist_ok=True)
    images, labels = load_test_images(data_dir, count)
    paths = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        slug = re.sub(r"[^a-z]+", "-", LABELS[label].lower()).strip("-")
        path = out / f"{i}-{slug}.png"
        Image.fromarray(image).save(path)  # (28, 28) uint8: a greyscale ("L") PNG
        paths.append(path)
    return paths
