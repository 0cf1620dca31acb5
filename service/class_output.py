"""Triton's classification extension: an output requested with `"parameters": {"classification": k}` comes back
as BYTES `[N, k]`, each element `"score:index:label"`, highest score first (tritonclient's `class_count=k`).

The score is the model's output value as it is (logits stay logits), written as C's `%f`, as Triton writes it.
"""

from __future__ import annotations

import numpy as np


def top_classes(scores: np.ndarray, k: int, labels: list[str]) -> np.ndarray:
    """(N, C) scores -> (N, min(k, C)) strings; ties keep the lower index first."""
    k = min(k, scores.shape[-1])
    order = np.argsort(-scores, axis=-1, kind="stable")[..., :k]  # (N, k)
    picked = np.take_along_axis(scores, order, axis=-1)
    cells = [f"{value:f}:{index}:{labels[index]}" for value, index in zip(picked.flat, order.flat, strict=True)]
    return np.array(cells, dtype=object).reshape(order.shape)
