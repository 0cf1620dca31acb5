"""An image folder's images decoded once, to the size the models take, and cached as arrays next to the run.

Decoding runs in threads (Pillow releases the GIL while it decodes and resizes), through the same
`modelrepo.pixels.image_pixels` the service applies to an upload, so training sees what serving sees. Files
that cannot be decoded are skipped, counted and listed in the data's notes, which the CLI prints on every run.
The cache is keyed by the listing (each file's path, class, size and modification time), the target size and
Pillow's version; the data's fingerprint, which keys the teacher's outputs and the students, hashes the decoded
pixels themselves.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import PIL
from PIL import Image
from tqdm import tqdm

from distill_training.image_folder import Files, Listing
from distill_training.splits import DatasetError, RawSplits
from distill_training.staleness import digest
from modelrepo.host import available_cores
from modelrepo.pixels import image_pixels

ImageShape = tuple[int, int, int]  # (C, H, W)
Decoded = tuple[dict[str, np.ndarray], dict[str, Any]]  # the four arrays, and the skipped files + fingerprint
# What a broken or non-image file raises in Pillow: truncated data, unknown format, bad header, a decompression bomb.
_UNREADABLE = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def _decode(path: Path, shape: ImageShape) -> np.ndarray | str:
    """Raw pixels (C, H, W) of one file, or why it cannot be read."""
    c, h, w = shape
    try:
        with Image.open(path) as image:
            return image_pixels(image, height=h, width=w, channels=c)
    except _UNREADABLE as err:
        return f"{type(err).__name__}: {err}"


def _decode_split(files: Files, shape: ImageShape, desc: str) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """Pixels (N, C, H, W) and labels of the readable files, and [path, reason] of the others."""
    with ThreadPoolExecutor(available_cores()) as pool:
        decoded = list(tqdm(pool.map(lambda f: _decode(f[0], shape), files), total=len(files), desc=desc))
    keep = [i for i, d in enumerate(decoded) if not isinstance(d, str)]
    pixels = np.empty((len(keep), *shape), dtype=np.uint8)
    for row, i in enumerate(keep):
        pixels[row] = decoded[i]
    labels = np.array([files[i][1] for i in keep], dtype=np.int64)
    skipped = [[str(files[i][0]), d] for i, d in enumerate(decoded) if isinstance(d, str)]
    return pixels, labels, skipped


def _key(listing: Listing, shape: ImageShape) -> str:
    def entries(files: Files) -> list[tuple[str, int, int, int]]:
        stats = [(path, label, path.stat()) for path, label in files]
        return [(str(p.relative_to(listing.root)), label, s.st_size, s.st_mtime_ns) for p, label, s in stats]

    return digest(
        {
            "train": entries(listing.train),
            "test": entries(listing.test),
            "classes": listing.classes,
            "shape": shape,
            "pillow": PIL.__version__,
        }
    )


def _fingerprint(arrays: dict[str, np.ndarray], classes: tuple[str, ...]) -> str:
    h = hashlib.sha256(json.dumps(classes).encode())
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()


def _check_every_class_readable(arrays: dict[str, np.ndarray], listing: Listing) -> None:
    for split in ("train", "test"):
        present = set(np.unique(arrays[f"{split}_y"]).tolist())
        lost = [name for i, name in enumerate(listing.classes) if i not in present]
        if lost:
            raise DatasetError(
                f"class(es) {', '.join(lost)} have no readable image in the {split} split of {listing.root} "
                "(every file of theirs is corrupt): replace the files or remove the class"
            )


def _build(listing: Listing, shape: ImageShape) -> Decoded:
    arrays: dict[str, np.ndarray] = {}
    skipped: list[list[str]] = []
    for split, files in (("train", listing.train), ("test", listing.test)):
        x, y, lost = _decode_split(files, shape, desc=f"decoding {split} images")
        arrays[f"{split}_x"], arrays[f"{split}_y"] = x, y
        skipped += lost
    meta = {"skipped": skipped, "fingerprint": _fingerprint(arrays, listing.classes), "classes": listing.classes}
    return arrays, meta


def _notes(listing: Listing, skipped: list[list[str]]) -> tuple[str, ...]:
    """What every run tells the user: the files ignored, and each file skipped and why."""
    notes = []
    if listing.ignored:
        example = listing.ignored[0].relative_to(listing.root)
        notes.append(f"note: ignored {len(listing.ignored)} file(s) that are not .png/.jpg/.jpeg (e.g. {example})")
    if skipped:
        total = len(listing.train) + len(listing.test)
        lines = [f"  {Path(path).relative_to(listing.root)}: {reason}" for path, reason in skipped]
        header = f"warning: skipped {len(skipped)} of {total} image files that cannot be read:"
        notes.append("\n".join([header, *lines]))
    return tuple(notes)


def _read_cache(cache_dir: Path, key: str) -> Decoded | None:
    try:
        meta = json.loads((cache_dir / f"{key[:16]}.json").read_text())
        with np.load(cache_dir / f"{key[:16]}.npz", allow_pickle=False) as npz:
            return {name: npz[name] for name in ("train_x", "train_y", "test_x", "test_y")}, meta
    except (OSError, ValueError, KeyError):
        return None


def _write_cache(cache_dir: Path, key: str, decoded: Decoded) -> None:
    """The arrays first, then the meta that makes them count, each atomically (temp file + rename)."""
    arrays, meta = decoded
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f"{key[:16]}.tmp"
    with tmp.open("wb") as f:
        np.savez(
            f, train_x=arrays["train_x"], train_y=arrays["train_y"], test_x=arrays["test_x"], test_y=arrays["test_y"]
        )
    tmp.replace(cache_dir / f"{key[:16]}.npz")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(cache_dir / f"{key[:16]}.json")


def load_images(listing: Listing, shape: ImageShape, cache_dir: Path | None) -> RawSplits:
    """The folder's images as uint8 (N, C, H, W) arrays, decoded once and cached in `cache_dir` (if given)."""
    key = _key(listing, shape)
    decoded = _read_cache(cache_dir, key) if cache_dir else None
    if decoded is None:
        decoded = _build(listing, shape)
        if cache_dir:
            _write_cache(cache_dir, key, decoded)
    arrays, meta = decoded
    _check_every_class_readable(arrays, listing)
    x, y = (arrays["train_x"], arrays["test_x"]), (arrays["train_y"], arrays["test_y"])
    notes = _notes(listing, meta["skipped"])
    return RawSplits(x[0], y[0], x[1], y[1], str(meta["fingerprint"]), labels=listing.classes, notes=notes)
