"""How an image becomes a model's input, per its card's `Preprocessing` and input datatype, defined once: the
service feeds requests through it and training feeds its teachers and students through it, so a model sees
the same tensor in training, at export and in serving.

image -> greyscale or RGB -> resized to height x width (bilinear) -> raw pixels (C, H, W) -> x = (pixel * scale -
mean) / std per channel -> laid out NCHW or NHWC -> cast to the input's datatype (an integer input is rounded
and clipped to its range: a model that normalises inside its graph takes raw pixels, scale 1, mean 0, std 1).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from modelrepo.card import Preprocessing
from modelrepo.datatypes import NUMPY_DTYPES


def image_pixels(image: Image.Image, *, height: int, width: int, channels: int) -> np.ndarray:
    """Raw uint8 pixels (C, H, W) of `image`, converted to greyscale (1 channel) or RGB (3) and resized."""
    resized = image.convert("L" if channels == 1 else "RGB").resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.uint8)  # (H, W) or (H, W, 3)
    return pixels[None] if channels == 1 else np.ascontiguousarray(pixels.transpose(2, 0, 1))


def normalise(pixels: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """(N, C, H, W) raw pixels -> (N, C, H, W) float32 model input."""
    mean = np.asarray(prep.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(prep.std, dtype=np.float32)[:, None, None]
    return ((pixels.astype(np.float32) * np.float32(prep.scale) - mean) / std).astype(np.float32)


def model_input(pixels: np.ndarray, prep: Preprocessing, datatype: str) -> np.ndarray:
    """(N, C, H, W) raw pixels -> the model's input: normalised, in the card's layout, of its datatype."""
    x = normalise(pixels, prep)
    if prep.layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # (N, H, W, C)
    dtype = NUMPY_DTYPES[datatype]
    if dtype.kind in "iu":  # a model that normalises inside its graph: raw values, rounded into its range
        info = np.iinfo(dtype.type)  # type: ignore[type-var]
        x = np.clip(np.rint(x), info.min, info.max)
    return np.asarray(x.astype(dtype, copy=False))
