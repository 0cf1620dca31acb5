"""`distill_bench samples` writes real test images as PNGs a person can upload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from tiers import require

from distill_bench.samples import load_test_images, write_pngs
from modelrepo.dataset import DEFAULT_DATA_DIR


def test_pngs_hold_the_test_images_named_by_label(tmp_path: Path) -> None:
    require(Path(DEFAULT_DATA_DIR, "t10k-images-idx3-ubyte.gz").exists(), "Debian package dataset-fashion-mnist")
    paths = write_pngs(tmp_path, count=3)
    images, labels = load_test_images(count=3)
    assert [p.name for p in paths] == ["0-ankle-boot.png", "1-pullover.png", "2-trouser.png"]
    assert labels.tolist() == [9, 2, 1]
    for path, image in zip(paths, images, strict=True):
        with Image.open(path) as png:
            assert png.mode == "L" and np.array_equal(np.asarray(png), image)
