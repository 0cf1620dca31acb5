"""Batch-1 onnxruntime latency, measured in interleaved rounds so a noisy neighbour slows every model alike."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from distill_training.export import INPUT_NAME, session


def measure_latency(paths: dict[str, Path], *, threads: int, runs: int, rounds: int = 10) -> dict[str, list[float]]:
    """Batch-1 onnxruntime latencies (seconds) per model, `runs` calls split over interleaved rounds."""
    sessions = {label: session(path, threads=threads) for label, path in paths.items()}
    x = np.random.default_rng(0).standard_normal((1, *_input_shape(sessions))).astype(np.float32)
    times: dict[str, list[float]] = {label: [] for label in sessions}
    for sess in sessions.values():
        for _ in range(20):  # warm-up
            sess.run(None, {INPUT_NAME: x})
    for _ in range(rounds):
        for label, sess in sessions.items():
            for _ in range(max(1, runs // rounds)):
                start = time.perf_counter()
                sess.run(None, {INPUT_NAME: x})
                times[label].append(time.perf_counter() - start)
    return times


def _input_shape(sessions: dict[str, Any]) -> list[int]:
    shape = next(iter(sessions.values())).get_inputs()[0].shape
    return [int(d) for d in shape[1:]]
