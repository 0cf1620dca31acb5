"""An image folder as a data source: which files are the train and test images of which class.

Two layouts, as torchvision's ImageFolder and most labelling tools write them:

    DIR/train/<class>/*.png|jpg   and   DIR/test/<class>/*   (test/ optional: else cut from train/, seeded)
    DIR/<class>/*                                               (one tree, split into train and test, seeded)

Classes are the folder names, sorted, unless `DIR/labels.txt` (one folder name a line) gives the order the
teacher's outputs follow. Files in sub-folders of a class count; files that are not .png/.jpg/.jpeg are ignored
(and counted). Decoding and caching the images is `image_cache`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from distill_training.splits import DatasetError

IMAGE_SUFFIXES: Final = (".png", ".jpg", ".jpeg")
LABELS_FILE: Final = "labels.txt"
LAYOUT_HINT: Final = "expected DIR/train/<class>/*.png (and DIR/test/<class>/*) or DIR/<class>/*.png"

Files = list[tuple[Path, int]]  # (image file, class index)


@dataclass(frozen=True)
class Listing:
    """The image files of each split, labelled by class index into `classes`."""

    root: Path
    classes: tuple[str, ...]
    train: Files
    test: Files
    ignored: list[Path] = field(default_factory=list)  # files that are not images by their suffix
    test_cut_from_train: bool = False


def is_image_folder(root: Path) -> bool:
    """A directory with sub-directories (the IDX and NPZ sources are looked for first)."""
    return root.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir())


def _class_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(folder: Path, ignored: list[Path]) -> list[Path]:
    """The image files under `folder`, sorted; other files go to `ignored`."""
    images: list[Path] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        is_image = path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
        (images if is_image else ignored).append(path)
    return images


def _loose_files(folder: Path) -> list[Path]:
    """Files beside the class folders, which belong to no class (labels.txt aside)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name != LABELS_FILE)


def class_order(root: Path, found: list[str]) -> tuple[str, ...]:
    """The class folders in the order of `labels.txt` if there is one, else sorted by name."""
    path = root / LABELS_FILE
    if not path.is_file():
        return tuple(sorted(found))
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    repeated = sorted({n for n in names if names.count(n) > 1})
    missing, unknown = sorted(set(found) - set(names)), sorted(set(names) - set(found))
    problems = [
        f"repeats {', '.join(repeated)}" if repeated else "",
        f"lacks the folders {', '.join(missing)}" if missing else "",
        f"names folders that do not exist: {', '.join(unknown)}" if unknown else "",
    ]
    if any(problems):
        detail = "; ".join(p for p in problems if p)
        raise DatasetError(f"{path} {detail}: it must list each class folder once, one a line, in output order")
    return tuple(names)


def _split(per_class: dict[str, list[Path]], fraction: float, seed: int) -> tuple[dict[str, list[Path]], ...]:
    """Each class's files cut into train and test: a seeded `fraction` (at least one, never all) goes to test."""
    rng = np.random.default_rng(seed)
    train, test = {}, {}
    for name, files in per_class.items():
        if len(files) < 2:
            raise DatasetError(f"class {name!r} has {len(files)} image(s); at least 2 are needed to split it")
        order = rng.permutation(len(files))
        n_test = min(len(files) - 1, max(1, round(fraction * len(files))))
        test[name] = sorted(files[i] for i in order[:n_test])
        train[name] = sorted(files[i] for i in order[n_test:])
    return train, test


def _labelled(per_class: dict[str, list[Path]], classes: tuple[str, ...]) -> Files:
    return [(path, index) for index, name in enumerate(classes) for path in per_class[name]]


def scan(root: Path, *, test_fraction: float, split_seed: int) -> Listing:
    """List the folder; a DatasetError naming the fix for no classes, one class, an empty class, or a test/
    whose classes differ from train/'s."""
    if (root / "test").is_dir() and not (root / "train").is_dir():
        raise DatasetError(f"{root} has test/ but no train/; {LAYOUT_HINT}")
    train_root = root / "train" if (root / "train").is_dir() else root
    found = _class_dirs(train_root)
    if len(found) < 2:
        raise DatasetError(f"{train_root} holds {len(found)} class folder(s), at least 2 are needed; {LAYOUT_HINT}")
    classes = class_order(root, found)
    ignored = _loose_files(train_root) + (_loose_files(root / "test") if train_root != root else [])
    train = {name: _images(train_root / name, ignored) for name in classes}
    _check_not_empty(train, train_root)
    test_root = root / "test"
    if train_root == root or not test_root.is_dir():
        train, test = _split(train, test_fraction, split_seed)
    else:
        test_found = _class_dirs(test_root)
        if set(test_found) != set(classes):
            raise DatasetError(
                f"{test_root} has class folders {test_found}, {train_root} has {sorted(classes)}: they must match"
            )
        test = {name: _images(test_root / name, ignored) for name in classes}
        _check_not_empty(test, test_root)
    return Listing(root, classes, _labelled(train, classes), _labelled(test, classes), ignored, not test_root.is_dir())


def _check_not_empty(per_class: dict[str, list[Path]], folder: Path) -> None:
    empty = [name for name, files in per_class.items() if not files]
    if empty:
        raise DatasetError(
            f"class folder(s) {', '.join(empty)} in {folder} hold no {'/'.join(IMAGE_SUFFIXES)} files: "
            "add images or remove the folder"
        )
