"""Raw pixels or decoded images -> a model's normalised input, per its card's `Preprocessing`.

x = (pixel * scale - mean) / std per channel, after resizing to height x width and greyscale (or RGB).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from modelrepo.card import Preprocessing
from service.errors import InvalidInput


def normalise(pixels: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """(N, C, H, W) raw pixels -> (N, C, H, W) float32 model input."""
    mean = np.asarray(prep.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(prep.std, dtype=np.float32)[:, None, None]
    return ((pixels.astype(np.float32) * np.float32(prep.scale) - mean) / std).astype(np.float32)


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
