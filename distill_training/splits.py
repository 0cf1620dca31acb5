"""What every data source gives (`RawSplits`: the raw train and test images and labels), and its error."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class DatasetError(Exception):
    """A missing or unreadable dataset; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class RawSplits:
    """uint8 images (N, C, H, W) and int64 labels for the full train and test sets, plus a fingerprint."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    fingerprint: str  # sha256 of what was read: keys every cached artifact built from it
    labels: tuple[str, ...] = ()  # the class names where the source has them (an image folder); else data.labels
    notes: tuple[str, ...] = ()  # what a person should know about what was read (files ignored or skipped)
