"""The IDX / NPZ reader on tiny generated files, and its errors."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from distill_training.config import DataConfig
from distill_training.data import IDX_FILES, DatasetError, load_dataset, load_raw, read_idx, validation_size


def write_idx(path: Path, array: np.ndarray, *, compress: bool) -> Path:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def make_idx_set(root: Path, *, n_train: int = 40, n_test: int = 10, compress: bool = True) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 28, 28)),
        "train_y": rng.integers(0, 10, n_train),
        "test_x": rng.integers(0, 256, (n_test, 28, 28)),
        "test_y": rng.integers(0, 10, n_test),
    }
    for key, stem in IDX_FILES.items():
        write_idx(root / stem, arrays[key], compress=compress)
    return root


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trips(tmp_path: Path, compress: bool) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "images-idx3-ubyte", images, compress=compress)
    np.testing.assert_array_equal(read_idx(path), images)


def test_read_idx_rejects_a_truncated_file(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "images-idx3-ubyte", np.zeros((5, 28, 28)), compress=False)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="corrupt"):
        read_idx(path)


def test_read_idx_rejects_a_bad_magic_number(tmp_path: Path) -> None:
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(b"\x12\x34\x08\x03" + bytes(100))
    with pytest.raises(DatasetError, match="magic"):
        read_idx(path)


def test_read_idx_rejects_a_broken_gzip(tmp_path: Path) -> None:
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(b"\x1f\x8b" + bytes(50))
    with pytest.raises(DatasetError, match="cannot read"):
        read_idx(path)


@pytest.mark.parametrize("compress", [True, False])
def test_load_raw_reads_an_idx_directory(tmp_path: Path, compress: bool) -> None:
    raw = load_raw(make_idx_set(tmp_path, compress=compress))
    assert raw.train_x.shape == (40, 1, 28, 28) and raw.train_x.dtype == np.uint8
    assert raw.test_y.shape == (10,) and raw.test_y.dtype == np.int64
    assert len(raw.fingerprint) == 64


def test_missing_directory_says_how_to_get_the_data(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="--data-dir"):
        load_raw(tmp_path / "nope")


def test_missing_files_are_named(tmp_path: Path) -> None:
    make_idx_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte"):
        load_raw(tmp_path)


def test_npz_files_are_read_and_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "train.npz", x=rng.integers(0, 256, (30, 8, 8, 1), dtype=np.uint8), y=rng.integers(0, 3, 30))
    np.savez(tmp_path / "test.npz", x=rng.integers(0, 256, (6, 8, 8, 1), dtype=np.uint8), y=rng.integers(0, 3, 6))
    data = load_dataset(DataConfig(data_dir=str(tmp_path), labels=("a", "b", "c"), val_size=10, val_fraction=0.5))
    assert data.image_shape == (1, 8, 8)
    assert (len(data.train_x), len(data.val_x), len(data.test_x)) == (20, 10, 6)
    assert abs(float(data.train_x.mean())) < 1e-4 and abs(float(data.train_x.std()) - 1) < 0.05


@pytest.mark.parametrize(("n_train", "expected"), [(60000, 5000), (1000, 100), (30, 3), (5, 1)])
def test_the_validation_split_scales_with_a_small_train_set(n_train: int, expected: int) -> None:
    assert validation_size(DataConfig(val_size=5000, val_fraction=0.1), n_train) == expected


def test_npz_images_are_resized_and_converted_to_the_asked_shape(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "train.npz", x=rng.integers(0, 256, (20, 8, 8), dtype=np.uint8), y=rng.integers(0, 3, 20))
    np.savez(tmp_path / "test.npz", x=rng.integers(0, 256, (4, 8, 8), dtype=np.uint8), y=rng.integers(0, 3, 4))
    cfg = DataConfig(data_dir=str(tmp_path), labels=("a", "b", "c"), image_size=(12, 10), channels=3)
    data = load_dataset(cfg)
    assert data.image_shape == (3, 12, 10) and data.test_pixels is not None
    assert data.test_pixels.shape == (4, 3, 12, 10)
    # greyscale to RGB repeats the grey value in every channel
    assert (data.test_pixels[:, 0] == data.test_pixels[:, 2]).all()


def test_labels_out_of_range_are_an_error(tmp_path: Path) -> None:
    make_idx_set(tmp_path)
    with pytest.raises(DatasetError, match="labels"):
        load_dataset(DataConfig(data_dir=str(tmp_path), labels=("a", "b"), val_size=5))
