"""Datasets: MNIST-format IDX files (gzip or raw) or NPZ files (`x`, `y`), split into train / val / test.

The validation split is held out of train (for model selection and tuning); the test set is only used for the
final numbers. Images are normalised with the mean and std of the training split: `(pixel / 255 - mean) / std`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from distill_training.config import DataConfig
from modelrepo import dataset as idx
from modelrepo.dataset import DEBIAN_PACKAGE, DEFAULT_DATA_DIR, IDX_FILES, find_idx


class DatasetError(Exception):
    """A missing or unreadable dataset; the message says what is wrong and how to fix it."""


def _fix_hint(data_dir: Path) -> str:
    if str(data_dir) == DEFAULT_DATA_DIR:
        return f"install it with `apt-get install {DEBIAN_PACKAGE}`, or pass --data-dir DIR with your own data"
    return (
        "pass --data-dir DIR holding the four MNIST-format IDX files (train-images-idx3-ubyte[.gz], ...) "
        f"or train.npz and test.npz (arrays x, y); Fashion-MNIST: `apt-get install {DEBIAN_PACKAGE}`"
    )


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (`modelrepo.dataset.read_idx`), its problems as DatasetError (the CLI's error, exit 2)."""
    try:
        return idx.read_idx(path)
    except idx.IdxError as err:
        raise DatasetError(str(err)) from None


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return np.asarray(npz["x"]), np.asarray(npz["y"])
    except KeyError:
        raise DatasetError(f"{path} must hold arrays named 'x' (images) and 'y' (labels)") from None
    except (OSError, ValueError) as err:
        raise DatasetError(f"cannot read {path}: {err}") from None


@dataclass(frozen=True)
class RawSplits:
    """uint8 images (N, C, H, W) and int64 labels for the full train and test sets, plus a fingerprint."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    fingerprint: str  # sha256 of the files read: keys every cached artifact built from them


def _to_nchw(x: np.ndarray, path: str) -> np.ndarray:
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    else:
        raise DatasetError(f"{path}: images must be (N, H, W) or (N, H, W, C) with C in 1 or 3, got {x.shape}")
    if x.dtype != np.uint8:
        raise DatasetError(f"{path}: images must be uint8 pixels (0-255), got {x.dtype}")
    return np.ascontiguousarray(x)


def load_raw(data_dir: Path) -> RawSplits:
    """Load IDX files, else train.npz/test.npz, from `data_dir`; raise DatasetError with the fix otherwise."""
    if not data_dir.is_dir():
        raise DatasetError(f"dataset directory {data_dir} does not exist; {_fix_hint(data_dir)}")
    paths = {key: find_idx(data_dir, stem) for key, stem in IDX_FILES.items()}
    if all(paths.values()):
        found = [p for p in paths.values() if p is not None]
        arrays = {key: read_idx(p) for key, p in paths.items() if p is not None}
    elif (data_dir / "train.npz").is_file() and (data_dir / "test.npz").is_file():
        found = [data_dir / "train.npz", data_dir / "test.npz"]
        arrays = {}
        arrays["train_x"], arrays["train_y"] = _load_npz(found[0])
        arrays["test_x"], arrays["test_y"] = _load_npz(found[1])
    else:
        missing = [stem for key, stem in IDX_FILES.items() if paths[key] is None]
        raise DatasetError(f"no dataset in {data_dir} (missing {', '.join(missing)}); {_fix_hint(data_dir)}")
    for split in ("train", "test"):
        if len(arrays[f"{split}_x"]) != len(arrays[f"{split}_y"]):
            raise DatasetError(f"{data_dir}: {split} images and labels differ in count")
    digest = hashlib.sha256()
    for p in found:
        digest.update(p.read_bytes())
    return RawSplits(
        train_x=_to_nchw(arrays["train_x"], str(data_dir)),
        train_y=arrays["train_y"].astype(np.int64),
        test_x=_to_nchw(arrays["test_x"], str(data_dir)),
        test_y=arrays["test_y"].astype(np.int64),
        fingerprint=digest.hexdigest(),
    )


@dataclass(frozen=True)
class Dataset:
    """Normalised float32 tensors (N, C, H, W) and int64 labels for train, val and test."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: list[float]
    std: list[float]
    labels: tuple[str, ...]
    fingerprint: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)


def load_dataset(cfg: DataConfig) -> Dataset:
    """Read, check labels, split a validation set off train (seeded), normalise with train statistics."""
    raw = load_raw(Path(cfg.data_dir))
    n_classes = len(cfg.labels)
    for split, y in (("train", raw.train_y), ("test", raw.test_y)):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise DatasetError(f"{split} labels must lie in 0..{n_classes - 1} (data.labels has {n_classes} names)")
    order = np.random.default_rng(cfg.split_seed).permutation(len(raw.train_x))
    val_idx, train_idx = order[: cfg.val_size], order[cfg.val_size :]
    if cfg.train_limit:
        train_idx = train_idx[: cfg.train_limit]
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise DatasetError(f"train set of {len(raw.train_x)} images is too small for val_size={cfg.val_size}")
    pixels = raw.train_x[train_idx].astype(np.float64) / 255.0  # (N, C, H, W)
    mean = pixels.mean(axis=(0, 2, 3))
    std = pixels.std(axis=(0, 2, 3))

    def norm(x: np.ndarray) -> torch.Tensor:
        scaled = (x.astype(np.float32) / 255.0 - mean[None, :, None, None]) / std[None, :, None, None]
        return torch.from_numpy(scaled.astype(np.float32))

    return Dataset(
        train_x=norm(raw.train_x[train_idx]),
        train_y=torch.from_numpy(raw.train_y[train_idx]),
        val_x=norm(raw.train_x[val_idx]),
        val_y=torch.from_numpy(raw.train_y[val_idx]),
        test_x=norm(raw.test_x),
        test_y=torch.from_numpy(raw.test_y),
        mean=[float(m) for m in mean],
        std=[float(s) for s in std],
        labels=tuple(cfg.labels),
        fingerprint=raw.fingerprint,
    )
