"""The friendly request's fields, checked and parsed: pixel rows and true labels (image files: `service.images`).

What comes out is raw pixels (0..255); `service.preprocessing` turns them into a model's input.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from service.errors import BadRequest, InvalidInput


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


INTEGER = re.compile(r"\s*-?[0-9]{1,18}\s*")  # not int()'s "9_0" (90), other scripts' digits or 5000 digits


def parse_label_field(text: str, rows: int) -> list[int] | None:
    """The multipart `labels` form field: comma-separated class indices."""
    if not text.strip():
        return None
    fields = text.split(",")
    if len(fields) != rows:
        raise InvalidInput(f"'labels' has {len(fields)} entries for {rows} rows; give one per row")
    if not all(INTEGER.fullmatch(v) for v in fields):
        raise InvalidInput(f"'labels' must be comma-separated integers such as 9,2, got {text[:200]!r}")
    return parse_labels([int(v) for v in fields], rows)
