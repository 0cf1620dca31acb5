"""Friendly inputs (raw pixel rows or PNG/JPEG files) -> a model's normalised input, per its card.

x = (pixel * scale - mean) / std per channel, after resizing to height x width and greyscale (or RGB).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from modelrepo.card import Preprocessing
from service.errors import BadRequest, InvalidInput, PayloadTooLarge

IMAGE_FORMATS = ["PNG", "JPEG"]


def normalise(pixels: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """(N, C, H, W) raw pixels -> (N, C, H, W) float32 model input."""
    mean = np.asarray(prep.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(prep.std, dtype=np.float32)[:, None, None]
    return ((pixels.astype(np.float32) * np.float32(prep.scale) - mean) / std).astype(np.float32)


def decode_image(name: str, data: bytes, max_pixels: int) -> Image.Image:
    """Decode a PNG/JPEG of at most `max_pixels` pixels, checked from its header before any pixel is decoded."""
    too_large = f"image {name!r} is larger than {max_pixels} pixels (max_image_pixels, per request)"
    try:
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        if image.width * image.height > max_pixels:
            raise PayloadTooLarge(f"{too_large}: {image.width}x{image.height}")
        image.load()
    except Image.DecompressionBombError:  # PIL's own limit, far above ours, checked as it opens the file
        raise PayloadTooLarge(too_large) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise InvalidInput(f"file {name!r} is not a readable PNG or JPEG image") from None
    return image


def _image_pixels(image: Image.Image, prep: Preprocessing) -> np.ndarray:
    mode = "L" if prep.channels == 1 else "RGB"
    resized = image.convert(mode).resize((prep.width, prep.height), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.float32)  # (H, W) or (H, W, 3)
    return pixels[None] if prep.channels == 1 else pixels.transpose(2, 0, 1)


def _rows_pixels(rows: np.ndarray, prep: Preprocessing) -> np.ndarray:
    c, h, w = prep.channels, prep.height, prep.width
    accepted = [(c * h * w,), (c, h, w)] + ([(h, w)] if c == 1 else [])
    if rows.shape[1:] not in accepted:
        shapes = " or ".join("x".join(map(str, s)) for s in accepted)
        got = "x".join(map(str, rows.shape[1:]))
        raise InvalidInput(f"each row must hold {c * h * w} pixel values shaped {shapes}; got rows shaped {got}")
    return rows.reshape(len(rows), c, h, w)


@dataclass
class PixelBatch:
    """Raw pixel rows or decoded images, turned into each model's input on demand (cached per preprocessing)."""

    rows: np.ndarray | None = None
    images: list[Image.Image] = field(default_factory=list)
    labels: list[int] | None = None
    _cache: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else len(self.images)

    def subset(self, index: np.ndarray) -> PixelBatch:
        return PixelBatch(
            rows=None if self.rows is None else self.rows[index],
            images=[self.images[i] for i in index] if self.rows is None else [],
            labels=None if self.labels is None else [self.labels[i] for i in index],
        )

    def tensor(self, prep: Preprocessing) -> np.ndarray:
        key = prep.model_dump_json()
        if key not in self._cache:
            if self.rows is not None:
                pixels = _rows_pixels(self.rows, prep)
            else:
                pixels = np.stack([_image_pixels(image, prep) for image in self.images])
            self._cache[key] = normalise(pixels, prep)
        return self._cache[key]


def parse_rows(inputs: Any) -> np.ndarray:
    """JSON `inputs` -> (N, ...) float32 raw pixels, checked finite and within 0..255."""
    if not isinstance(inputs, list):
        raise BadRequest("'inputs' must be a JSON array of rows of pixel values (0..255)")
    try:
        with np.errstate(all="ignore"):
            rows = np.asarray(inputs, dtype=np.float32)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest("'inputs' must be rows of numbers, all of the same shape") from None
    if rows.ndim < 2 and len(rows):
        raise InvalidInput("'inputs' must be a list of rows: wrap a single image in a list")
    if not np.isfinite(rows).all():
        raise InvalidInput("'inputs' contains NaN or Inf; pixel values must be finite, 0..255")
    if rows.size and (rows.min() < 0 or rows.max() > 255):
        raise InvalidInput("pixel values must be raw intensities within 0..255 (the service normalises them)")
    return rows


def parse_labels(labels: Any, rows: int) -> list[int] | None:
    if labels is None:
        return None
    if not isinstance(labels, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        raise InvalidInput("'labels' must be a list of integer class indices, one per row")
    if len(labels) != rows:
        raise InvalidInput(f"'labels' has {len(labels)} entries for {rows} rows; give one per row")
    return list(labels)


def parse_label_field(text: str, rows: int) -> list[int] | None:
    """The multipart `labels` form field: comma-separated class indices."""
    if not text.strip():
        return None
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise InvalidInput(f"'labels' must be comma-separated integers, got {text!r}") from None
    return parse_labels(values, rows)
