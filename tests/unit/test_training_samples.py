"""Training writes real test images and their true labels next to the models (`distill_training.samples`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from distill_training.config import DataConfig
from distill_training.data import load_dataset
from distill_training.samples import MAX_SAMPLES, write_samples
from modelrepo.layout import list_model_dirs
from modelrepo.samples import read_index, samples_dir

LABELS = ("T-shirt/top", "Trouser", "Pullover")


def npz_set(root: Path, test_y: list[int], channels: int = 1, classes: int = 2) -> tuple[Path, np.ndarray]:
    """train.npz and test.npz of random uint8 images, (N, 8, 8) or (N, 8, 8, 3); returns the test images."""
    rng = np.random.default_rng(0)
    shape = (8, 8) if channels == 1 else (8, 8, 3)
    train_x = rng.integers(0, 256, (30, *shape), dtype=np.uint8)
    test_x = rng.integers(0, 256, (len(test_y), *shape), dtype=np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "train.npz", x=train_x, y=rng.integers(0, classes, 30))
    np.savez(root / "test.npz", x=test_x, y=np.asarray(test_y))
    return root, test_x


def test_the_first_test_image_of_each_class_is_written_pixel_for_pixel(tmp_path: Path) -> None:
    data_dir, test_x = npz_set(tmp_path / "data", test_y=[2, 2, 0, 1, 0, 2])
    data = load_dataset(DataConfig(data_dir=str(data_dir), labels=LABELS, val_size=5))
    repo = tmp_path / "models"
    index = write_samples(data, repo, str(data_dir))
    assert [(s.class_index, s.label, s.test_index) for s in index.samples] == [
        (0, "T-shirt/top", 2),
        (1, "Trouser", 3),
        (2, "Pullover", 0),
    ]
    assert [s.file for s in index.samples] == ["0-t-shirt-top.png", "1-trouser.png", "2-pullover.png"]
    assert read_index(repo) == index and index.dataset == str(data_dir)
    for sample in index.samples:
        with Image.open(samples_dir(repo) / sample.file) as png:
            assert png.mode == "L" and np.array_equal(np.asarray(png), test_x[sample.test_index])
    assert list_model_dirs(repo) == []  # the repository scan does not take the samples for a model


def test_colour_images_are_written_as_rgb(tmp_path: Path) -> None:
    data_dir, test_x = npz_set(tmp_path / "data", test_y=[1, 0], channels=3)
    data = load_dataset(DataConfig(data_dir=str(data_dir), labels=LABELS, val_size=5))
    index = write_samples(data, tmp_path / "models", str(data_dir))
    assert [s.test_index for s in index.samples] == [1, 0]  # class 2 has no test image: left out
    with Image.open(samples_dir(tmp_path / "models") / index.samples[0].file) as png:
        assert png.mode == "RGB" and np.array_equal(np.asarray(png), test_x[1])


def test_a_second_run_changes_nothing_and_a_new_data_set_leaves_no_stale_image(tmp_path: Path) -> None:
    data_dir, _ = npz_set(tmp_path / "data", test_y=[0, 1, 2])
    data = load_dataset(DataConfig(data_dir=str(data_dir), labels=LABELS, val_size=5))
    repo = tmp_path / "models"
    write_samples(data, repo, str(data_dir))
    before = {p: p.stat().st_mtime_ns for p in samples_dir(repo).iterdir()}
    write_samples(data, repo, str(data_dir))
    assert {p: p.stat().st_mtime_ns for p in samples_dir(repo).iterdir()} == before

    two_classes = ("Sandal", "Bag")
    other_dir, _ = npz_set(tmp_path / "other", test_y=[1, 0])
    other = load_dataset(DataConfig(data_dir=str(other_dir), labels=two_classes, val_size=5))
    index = write_samples(other, repo, str(other_dir))
    assert sorted(p.name for p in samples_dir(repo).glob("*.png")) == sorted(s.file for s in index.samples)
    assert [s.label for s in read_index(repo).samples] == ["Sandal", "Bag"]


def test_at_most_a_handful_of_images_for_many_classes(tmp_path: Path) -> None:
    many = tuple(f"class {i}" for i in range(20))
    data_dir, _ = npz_set(tmp_path / "data", test_y=list(range(20)))
    data = load_dataset(DataConfig(data_dir=str(data_dir), labels=many, val_size=5))
    index = write_samples(data, tmp_path / "models", str(data_dir))
    assert [s.class_index for s in index.samples] == list(range(MAX_SAMPLES))
    assert index.samples[3].file == "3-class-3.png"
