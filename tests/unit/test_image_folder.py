"""An image folder as a data source: its layouts, the class order, the seeded split, the decoded-image cache, and
the clear errors and notes for what a real folder holds (corrupt files, empty classes, stray files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from foreign_teachers import colour_folder, colour_image, png
from PIL import Image

from distill_training import image_cache
from distill_training.config import DataConfig
from distill_training.data import DatasetError, load_dataset
from distill_training.image_folder import scan
from modelrepo.pixels import image_pixels


def config(root: Path, image_size: tuple[int, int] = (8, 8)) -> DataConfig:
    return DataConfig(data_dir=str(root), image_size=image_size, channels=3)


def tree(root: Path, counts: dict[str, int]) -> Path:
    """`root/<class>/<i>.png`, one tree without train/ and test/."""
    rng = np.random.default_rng(0)
    for index, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            (root / name / f"{i}.png").write_bytes(png(colour_image(rng, index % 3, (8, 8))))
    return root


def test_classes_are_the_folder_names_sorted(tmp_path: Path) -> None:
    listing = scan(colour_folder(tmp_path), test_fraction=0.2, split_seed=0)
    assert listing.classes == ("blue", "green", "red")
    assert [label for path, label in listing.train if path.parent.name == "red"] == [2] * 12


def test_labels_txt_gives_the_class_order(tmp_path: Path) -> None:
    colour_folder(tmp_path)
    (tmp_path / "labels.txt").write_text("red\ngreen\n\nblue\n")
    data = load_dataset(config(tmp_path))
    assert data.labels == ("red", "green", "blue")
    assert data.test_pixels is not None
    reds = data.test_pixels[data.test_y.numpy() == 0]
    assert (reds[:, 0].mean(axis=(1, 2)) > reds[:, 2].mean(axis=(1, 2))).all()  # label 0 is the red folder


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("red\ngreen\n", "lacks the folders blue"),
        ("red\ngreen\nblue\npurple\n", "names folders that do not exist: purple"),
        ("red\ngreen\nblue\nred\n", "repeats red"),
    ],
)
def test_labels_txt_must_list_each_class_folder_once(tmp_path: Path, lines: str, message: str) -> None:
    colour_folder(tmp_path)
    (tmp_path / "labels.txt").write_text(lines)
    with pytest.raises(DatasetError, match=message):
        scan(tmp_path, test_fraction=0.2, split_seed=0)


def test_one_tree_is_split_by_a_seeded_share_of_each_class(tmp_path: Path) -> None:
    root = tree(tmp_path / "flat", {"a": 10, "b": 10, "c": 3})
    first = scan(root, test_fraction=0.2, split_seed=0)
    again, other = (scan(root, test_fraction=0.2, split_seed=seed) for seed in (0, 1))
    assert first == again and first.test != other.test
    per_class = [sum(1 for _, label in first.test if label == k) for k in range(3)]
    assert per_class == [2, 2, 1]  # 20% of each class, at least one
    everything = sorted(p for p, _ in first.train + first.test)
    assert everything == sorted(root.rglob("*.png")) and not set(first.train) & set(first.test)


def test_train_without_test_cuts_the_test_split_from_train(tmp_path: Path) -> None:
    colour_folder(tmp_path, test=0)
    listing = scan(tmp_path, test_fraction=0.25, split_seed=0)
    assert listing.test_cut_from_train and len(listing.test) == 3 * 3 and len(listing.train) == 3 * 9


def test_a_class_with_one_image_cannot_be_split(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="class 'c' has 1 image"):
        scan(tree(tmp_path / "flat", {"a": 4, "b": 4, "c": 1}), test_fraction=0.2, split_seed=0)


def test_an_empty_class_is_an_error_that_names_it(tmp_path: Path) -> None:
    colour_folder(tmp_path)
    for f in (tmp_path / "train" / "green").iterdir():
        f.unlink()
    (tmp_path / "train" / "green" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetError, match=r"green in .*train hold no \.png/\.jpg/\.jpeg files"):
        scan(tmp_path, test_fraction=0.2, split_seed=0)


def test_test_classes_must_match_train_classes(tmp_path: Path) -> None:
    colour_folder(tmp_path)
    (tmp_path / "test" / "blue").rename(tmp_path / "test" / "bleu")
    with pytest.raises(DatasetError, match="must match"):
        scan(tmp_path, test_fraction=0.2, split_seed=0)


def test_a_single_class_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="at least 2 are needed"):
        scan(tree(tmp_path / "flat", {"only": 4}), test_fraction=0.2, split_seed=0)


def test_corrupt_files_are_skipped_counted_and_listed(tmp_path: Path) -> None:
    colour_folder(tmp_path)
    (tmp_path / "train/red/broken.png").write_bytes((tmp_path / "train/red/0.png").read_bytes()[:40])
    (tmp_path / "test/blue/text.jpg").write_text("not a jpeg")
    (tmp_path / "train/red/.DS_Store").write_bytes(b"\0\0")
    data = load_dataset(config(tmp_path))
    assert (len(data.train_y) + len(data.val_y), len(data.test_y)) == (3 * 12, 3 * 4)
    notes = "\n".join(data.notes)
    assert "skipped 2 of 50 image files that cannot be read" in notes
    assert "\n  train/red/broken.png: " in notes and "\n  test/blue/text.jpg: UnidentifiedImageError" in notes
    assert "ignored 1 file(s)" in notes


def test_a_class_whose_every_file_is_corrupt_is_an_error(tmp_path: Path) -> None:
    colour_folder(tmp_path)
    for f in (tmp_path / "test" / "green").iterdir():
        f.write_text("corrupt")
    with pytest.raises(DatasetError, match="green have no readable image in the test split"):
        load_dataset(config(tmp_path))


def test_images_of_any_size_and_mode_become_the_asked_shape_as_the_service_makes_them(tmp_path: Path) -> None:
    colour_folder(tmp_path)
    grey = np.random.default_rng(3).integers(0, 256, (20, 30)).astype(np.uint8)
    (tmp_path / "test/red/grey.png").write_bytes(png(grey))
    data = load_dataset(config(tmp_path, image_size=(6, 5)))
    assert data.test_pixels is not None and data.test_pixels.shape[1:] == (3, 6, 5)
    expected = image_pixels(Image.open(tmp_path / "test/red/grey.png"), height=6, width=5, channels=3)
    assert any((row == expected).all() for row in data.test_pixels)
    assert (expected[0] == expected[1]).all()  # greyscale becomes three equal channels


def test_an_image_folder_needs_a_size(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"data\.image_size=H,W"):
        load_dataset(DataConfig(data_dir=str(colour_folder(tmp_path))))


def test_decoded_images_are_cached_keyed_by_the_folders_contents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, cache = colour_folder(tmp_path / "data"), tmp_path / "cache"
    first = load_dataset(config(root), cache)
    assert len(list(cache.glob("*.npz"))) == 1

    def no_decoding(path: Path, shape: object) -> str:
        raise AssertionError(f"{path} decoded again")

    with monkeypatch.context() as patch:
        patch.setattr(image_cache, "_decode", no_decoding)
        cached = load_dataset(config(root), cache)
    assert cached.fingerprint == first.fingerprint and cached.notes == first.notes
    np.testing.assert_array_equal(cached.test_pixels, first.test_pixels)

    (root / "train/red/0.png").write_bytes(png(colour_image(np.random.default_rng(9), 1, (8, 8))))
    changed = load_dataset(config(root), cache)
    assert len(list(cache.glob("*.npz"))) == 2 and changed.fingerprint != first.fingerprint
