"""The default data set, Fashion-MNIST as Debian's `dataset-fashion-mnist` installs it, and the IDX format it
(and MNIST, KMNIST) comes in. numpy only: the training side, the benchmarks and the tests read it alike."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Final

import numpy as np

DEBIAN_PACKAGE: Final = "dataset-fashion-mnist"
DEFAULT_DATA_DIR: Final = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_LABELS: Final = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
IDX_FILES: Final = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES: Final[dict[int, np.dtype[np.generic]]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
}


class IdxError(ValueError):
    """A file that is not, or no longer, a readable IDX file; the message names it and says what is wrong."""


def read_idx(path: Path) -> np.ndarray:
    """One IDX file, gzip-compressed or raw: magic `0 0 <dtype> <ndim>`, big-endian dims, then the data."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise IdxError(f"cannot read {path}: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise IdxError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise IdxError(f"{path} is not an IDX file (truncated header)")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = _IDX_DTYPES[raw[2]]
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise IdxError(f"{path} is corrupt: header says {dims} ({expected} bytes), file has {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def find_idx(data_dir: Path, stem: str) -> Path | None:
    """`stem`, gzipped or not (or with the `.idx` spelling some mirrors use), in `data_dir`."""
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (data_dir / name).is_file():
            return data_dir / name
    return None


def load_test_split(data_dir: str | Path = DEFAULT_DATA_DIR) -> tuple[np.ndarray, np.ndarray]:
    """The test images (N, H, W) uint8 and labels (N,) of an IDX folder; IdxError names the fix when missing."""
    folder = Path(data_dir)
    arrays = []
    for key in ("test_x", "test_y"):
        path = find_idx(folder, IDX_FILES[key])
        if path is None:
            raise IdxError(
                f"{folder / IDX_FILES[key]}[.gz] not found: install the Debian package {DEBIAN_PACKAGE} "
                "or pass the folder of your MNIST-format IDX files"
            )
        arrays.append(read_idx(path))
    return arrays[0], arrays[1]
