"""Sample images next to the exported models (`modelrepo.samples`): the first test image of each class, as PNG,
with its true label, so a person trying the service has real images whose answer is known."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from distill_training.data import Dataset
from modelrepo.samples import SampleImage, SampleIndex, file_name, read_index, samples_dir, write_index

MAX_SAMPLES = 12  # a handful: one per class up to this many classes


def raw_test_image(data: Dataset, index: int) -> np.ndarray:
    """Test image `index` as the uint8 pixels it was read from: (H, W) or (H, W, 3); undoes the normalisation."""
    x = data.test_x[index].numpy().astype(np.float64)  # (C, H, W)
    mean = np.asarray(data.mean)[:, None, None]
    std = np.asarray(data.std)[:, None, None]
    pixels = np.clip(np.rint((x * std + mean) * 255.0), 0, 255).astype(np.uint8)
    return np.asarray(pixels[0] if len(pixels) == 1 else pixels.transpose(1, 2, 0))


def first_of_each_class(labels: np.ndarray, classes: int) -> list[int]:
    """Test indices of the first image of each class present, in class order, at most MAX_SAMPLES."""
    found = [int(np.flatnonzero(labels == c)[0]) for c in range(classes) if (labels == c).any()]
    return found[:MAX_SAMPLES]


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")  # (H, W): greyscale "L"; (H, W, 3): RGB
    return out.getvalue()


def _write_if_changed(path: Path, data: bytes) -> None:
    """Leave a file that already holds these bytes untouched, so a re-run changes nothing in the repository."""
    if not (path.is_file() and path.read_bytes() == data):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)


def write_samples(data: Dataset, repo: Path, source: str) -> SampleIndex:
    """Write `<repo>/samples/`: the chosen test images and `index.json` naming their true labels."""
    folder = samples_dir(repo)
    folder.mkdir(parents=True, exist_ok=True)
    chosen = first_of_each_class(data.test_y.numpy(), len(data.labels))
    samples = []
    for position, test_index in enumerate(chosen):
        class_index = int(data.test_y[test_index])
        label = data.labels[class_index]
        name = file_name(position, label)
        _write_if_changed(folder / name, _png(raw_test_image(data, test_index)))
        samples.append(SampleImage(file=name, label=label, class_index=class_index, test_index=test_index))
    index = SampleIndex(dataset=source, samples=samples)
    try:
        unchanged = read_index(repo) == index
    except (OSError, ValueError):
        unchanged = False
    if not unchanged:
        write_index(repo, index)
    kept = {s.file for s in samples}
    for stale in folder.glob("*.png"):  # an earlier run's images, of another data set
        if stale.name not in kept:
            stale.unlink()
    return index
