"""Batch-1 onnxruntime latency, measured in interleaved rounds so a noisy neighbour slows every model alike."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from distill_training.export import session
from modelrepo.card import TensorSpec
from modelrepo.datatypes import NUMPY_DTYPES


def example_input(spec: TensorSpec, rng: np.random.Generator) -> np.ndarray:
    """One random row of the input a card declares: pixels 0-255 for an integer input, N(0, 1) for a float one."""
    shape, dtype = [1, *spec.shape[1:]], NUMPY_DTYPES[spec.datatype]
    if dtype.kind in "iu":
        return rng.integers(0, 256, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def measure_latency(
    models: dict[str, tuple[Path, TensorSpec]], *, threads: int, runs: int, rounds: int = 10
) -> dict[str, list[float]]:
    """Batch-1 onnxruntime latencies (seconds) per model (its file and its card's input), `runs` calls split
    over interleaved rounds."""
    sessions = {label: session(path, threads=threads) for label, (path, _) in models.items()}
    rng = np.random.default_rng(0)
    feeds = {label: {spec.name: example_input(spec, rng)} for label, (_, spec) in models.items()}
    times: dict[str, list[float]] = {label: [] for label in sessions}
    for label, sess in sessions.items():
        for _ in range(20):  # warm-up
            sess.run(None, feeds[label])
    for _ in range(rounds):
        for label, sess in sessions.items():
            for _ in range(max(1, runs // rounds)):
                start = time.perf_counter()
                sess.run(None, feeds[label])
                times[label].append(time.perf_counter() - start)
    return times
