"""The friendly request's fields, checked and parsed: pixel rows, true labels, and image files.

What comes out is raw pixels (0..255) or decoded images; `service.preprocessing` turns them into a model's input.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from service.errors import BadRequest, InvalidInput, PayloadTooLarge

IMAGE_FORMATS = ["PNG", "JPEG"]


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
    """JSON `labels`: one integer class index per row, or absent."""
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
