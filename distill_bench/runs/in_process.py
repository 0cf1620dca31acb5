"""onnxruntime called in-process, as the service opens a model: the model's own limits, without HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from distill_bench.results.bench import InProcess
from modelrepo.host import available_cores
from modelrepo.onnx import open_session


def _run_times_us(session: ort.InferenceSession, feed: dict[str, np.ndarray], seconds: float) -> np.ndarray:
    for _ in range(20):
        session.run(None, feed)
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return np.array(times) * 1e6


def in_process(onnx_path: Path, input_name: str, x: np.ndarray, full_batch: int, seconds: float = 3.0) -> InProcess:
    """Batch 1 on one thread (the most the model itself allows on one core), and the time per row at batch 1
    and at `full_batch` rows with as many threads as cores (how much batching itself can gain)."""
    us = _run_times_us(open_session(onnx_path, intra_op_threads=1), {input_name: x}, seconds)
    cores = available_cores()
    session = open_session(onnx_path, intra_op_threads=cores)
    single = float(np.median(_run_times_us(session, {input_name: x}, seconds / 2)))
    full = np.repeat(x, full_batch, axis=0)  # (full_batch, C, H, W)
    batched = float(np.median(_run_times_us(session, {input_name: full}, seconds / 2))) / full_batch
    return InProcess(
        runs_per_s_one_core=1e6 / float(us.mean()),
        p50_us=float(np.percentile(us, 50)),
        p99_us=float(np.percentile(us, 99)),
        threads=cores,
        us_per_row_batch_1=single,
        us_per_row_full_batch=batched,
    )
