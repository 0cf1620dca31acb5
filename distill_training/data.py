"""Datasets: MNIST-format IDX files (gzip or raw), NPZ files (`x`, `y`) or an image folder (`image_folder`),
split into train / val / test, every image converted to the channels and size the config asks for.

The validation split is held out of train (for model selection and tuning); the test set is only used for the
final numbers. Images are normalised with the mean and std of the training split: `(pixel / 255 - mean) / std`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from distill_training.config import DataConfig
from distill_training.image_cache import ImageShape, load_images
from distill_training.image_folder import LAYOUT_HINT, is_image_folder, scan
from distill_training.splits import DatasetError as DatasetError
from distill_training.splits import RawSplits as RawSplits
from modelrepo import dataset as idx
from modelrepo.dataset import DEBIAN_PACKAGE, DEFAULT_DATA_DIR, IDX_FILES, find_idx
from modelrepo.pixels import image_pixels


def _fix_hint(data_dir: Path) -> str:
    if str(data_dir) == DEFAULT_DATA_DIR:
        return f"install it with `apt-get install {DEBIAN_PACKAGE}`, or pass --data-dir DIR with your own data"
    return (
        "pass --data-dir DIR holding the four MNIST-format IDX files (train-images-idx3-ubyte[.gz], ...), "
        f"train.npz and test.npz (arrays x, y), or an image folder ({LAYOUT_HINT}); "
        f"Fashion-MNIST: `apt-get install {DEBIAN_PACKAGE}`"
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


def _holds_arrays(data_dir: Path) -> bool:
    """The IDX or NPZ files of a dataset are there (they win over sub-folders)."""
    idx_found = all(find_idx(data_dir, stem) for stem in IDX_FILES.values())
    return idx_found or ((data_dir / "train.npz").is_file() and (data_dir / "test.npz").is_file())


def _is_folder_source(data_dir: Path) -> bool:
    """An image folder, and no IDX or NPZ files beside its sub-folders (those win)."""
    return data_dir.is_dir() and not _holds_arrays(data_dir) and is_image_folder(data_dir)


def _no_dataset(data_dir: Path) -> DatasetError:
    if not data_dir.is_dir():
        return DatasetError(f"dataset directory {data_dir} does not exist; {_fix_hint(data_dir)}")
    missing = [stem for stem in IDX_FILES.values() if find_idx(data_dir, stem) is None]
    return DatasetError(f"no dataset in {data_dir} (missing {', '.join(missing)}); {_fix_hint(data_dir)}")


def load_raw(data_dir: Path) -> RawSplits:
    """Load IDX files, else train.npz/test.npz, from `data_dir`; raise DatasetError with the fix otherwise."""
    if not data_dir.is_dir():
        raise _no_dataset(data_dir)
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
        raise _no_dataset(data_dir)
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


def target_shape(cfg: DataConfig) -> tuple[int | None, tuple[int, ...] | None]:
    """The channels and (height, width) the config asks for, None where it keeps the data's own."""
    if cfg.channels not in (0, 1, 3):
        raise DatasetError(f"data.channels must be 1 (greyscale) or 3 (RGB), got {cfg.channels}")
    if cfg.image_size and (len(cfg.image_size) != 2 or min(cfg.image_size) < 1):
        raise DatasetError(f"data.image_size must be two positive sizes, height,width; got {cfg.image_size}")
    return cfg.channels or None, tuple(cfg.image_size) or None


def _resize(x: np.ndarray, shape: ImageShape) -> np.ndarray:
    """(N, C, H, W) pixels converted to the shape (C', H', W') as an uploaded image would be."""
    mode = "L" if x.shape[1] == 1 else "RGB"
    out = np.empty((len(x), *shape), dtype=np.uint8)
    c, h, w = shape
    for i, image in enumerate(tqdm(x, desc=f"resizing to {c}x{h}x{w}", disable=len(x) < 1000)):
        pil = Image.fromarray(image[0] if mode == "L" else image.transpose(1, 2, 0), mode)
        out[i] = image_pixels(pil, height=h, width=w, channels=c)
    return out


def read_splits(cfg: DataConfig, cache_dir: Path | None = None) -> RawSplits:
    """IDX files, else NPZ files, else an image folder (its decoded images cached in `cache_dir`), with every
    image converted to the configured channels and size."""
    root = Path(cfg.data_dir)
    channels, size = target_shape(cfg)
    if _is_folder_source(root):
        if channels is None or size is None:
            raise DatasetError(
                f"{root} is an image folder: give the size its images become, --set data.image_size=H,W and "
                "--set data.channels=1|3 (`distill` takes both from the teacher)"
            )
        listing = scan(root, test_fraction=cfg.test_fraction, split_seed=cfg.split_seed)
        return load_images(listing, (channels, size[0], size[1]), cache_dir)
    raw = load_raw(root)
    c, h, w = raw.train_x.shape[1:]
    shape = (channels or c, *(size or (h, w)))
    if shape == (c, h, w):
        return raw
    return replace(raw, train_x=_resize(raw.train_x, shape), test_x=_resize(raw.test_x, shape))


def class_names(cfg: DataConfig) -> tuple[str, ...]:
    """The classes the data will have, read without decoding any image: an image folder's, else `cfg.labels`."""
    root = Path(cfg.data_dir)
    if _is_folder_source(root):
        return scan(root, test_fraction=cfg.test_fraction, split_seed=cfg.split_seed).classes
    if not root.is_dir() or not _holds_arrays(root):
        raise _no_dataset(root)
    return tuple(cfg.labels)


@dataclass(frozen=True)
class Dataset:
    """Normalised float32 tensors (N, C, H, W) and int64 labels for train, val and test; and the raw uint8
    pixels of train and test, for a teacher that normalises them itself (`onnx_teacher`)."""

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
    train_pixels: np.ndarray | None = None  # (N, C, H, W) uint8, the rows of train_x
    test_pixels: np.ndarray | None = None
    notes: tuple[str, ...] = ()  # what the loader found that a person should know (files skipped)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)


def validation_size(cfg: DataConfig, n_train: int) -> int:
    """`val_size` images, but never more than `val_fraction` of train (and at least one)."""
    return max(1, min(cfg.val_size, int(cfg.val_fraction * n_train)))


def load_dataset(cfg: DataConfig, cache_dir: Path | None = None) -> Dataset:
    """Read, check labels, split a validation set off train (seeded), normalise with train statistics. The
    labels are an image folder's classes, else `cfg.labels`."""
    raw = read_splits(cfg, cache_dir)
    labels = raw.labels or tuple(cfg.labels)
    n_classes = len(labels)
    for split, y in (("train", raw.train_y), ("test", raw.test_y)):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise DatasetError(f"{split} labels must lie in 0..{n_classes - 1} (data.labels has {n_classes} names)")
    n_val = validation_size(cfg, len(raw.train_x))
    order = np.random.default_rng(cfg.split_seed).permutation(len(raw.train_x))
    val_idx, train_idx = order[:n_val], order[n_val:]
    if cfg.train_limit:
        train_idx = train_idx[: cfg.train_limit]
    if len(train_idx) == 0:
        raise DatasetError(f"train set of {len(raw.train_x)} images is too small to hold out {n_val} for validation")
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
        labels=labels,
        fingerprint=raw.fingerprint,
        train_pixels=raw.train_x[train_idx],
        test_pixels=raw.test_x,
        notes=raw.notes,
    )
