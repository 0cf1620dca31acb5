"""Raw pixels -> a model's input, per its card's `Preprocessing` and input datatype.

x = (pixel * scale - mean) / std per channel, after resizing to height x width and greyscale (or RGB), laid out
NCHW or NHWC and cast to the input's datatype (`modelrepo.pixels`, which training uses too). So one image feeds
every model correctly, whatever each takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from modelrepo.card import Preprocessing
from modelrepo.pixels import model_input
from service.errors import InvalidInput


def preprocessing_key(prep: Preprocessing) -> str:
    """One preprocessing's identity: models that share it share one input tensor."""
    return prep.model_dump_json()


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
    """Raw pixel rows, or images already decoded to each preprocessing's size (`service.images`); each model's
    input is made from them on demand (once per preprocessing and datatype)."""

    rows: np.ndarray | None = None
    decoded: dict[str, np.ndarray] = field(default_factory=dict)  # preprocessing key -> (N, C, H, W) raw pixels
    labels: list[int] | None = None
    _cache: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else len(next(iter(self.decoded.values())))

    def subset(self, index: np.ndarray) -> PixelBatch:
        return PixelBatch(
            rows=None if self.rows is None else self.rows[index],
            decoded={key: pixels[index] for key, pixels in self.decoded.items()},
            labels=None if self.labels is None else [self.labels[i] for i in index],
        )

    def tensor(self, prep: Preprocessing, datatype: str = "FP32") -> np.ndarray:
        """The input of a model with this preprocessing and input datatype (computed once per pair)."""
        key = preprocessing_key(prep)
        if key + datatype not in self._cache:
            pixels = _rows_pixels(self.rows, prep) if self.rows is not None else self.decoded[key]
            self._cache[key + datatype] = model_input(pixels, prep, datatype)
        return self._cache[key + datatype]
