"""Batch-1 onnxruntime latency, measured in interleaved rounds so a noisy neighbour slows every model alike."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

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


def seconds_per_call(fn: Callable[[], object], calls: int, *, warmup: int) -> float:
    """Mean wall seconds of one call of `fn` over `calls` calls, after `warmup` calls that are not timed."""
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def _feed(sess: Any, spec: TensorSpec | None, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One row for the model: as its card declares the input (`spec`), else a float row of the graph's input."""
    if spec is not None:
        return {spec.name: example_input(spec, rng)}
    arg = sess.get_inputs()[0]
    return {arg.name: rng.standard_normal([1, *(int(d) for d in arg.shape[1:])]).astype(np.float32)}


def measure_latency(
    models: Mapping[str, Path],
    *,
    threads: int,
    runs: int,
    rounds: int = 10,
    inputs: Mapping[str, TensorSpec] | None = None,
) -> dict[str, list[float]]:
    """Batch-1 onnxruntime latencies (seconds) per model file, `runs` calls split over interleaved rounds; each
    fed as `inputs` (by model, a card's input) declares, else a float row of its graph's input."""
    sessions = {label: session(path, threads=threads) for label, path in models.items()}
    rng = np.random.default_rng(0)
    feeds = {label: _feed(sess, (inputs or {}).get(label), rng) for label, sess in sessions.items()}
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
