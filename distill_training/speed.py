"""This machine's speed, measured before anything is trained, so the time budget can be fitted to it.

`calibrate` times a few training steps of every architecture the pipeline will train (the teacher's members on
their share of the cores, each student candidate on its one thread); `graph_latencies` exports each untrained
net and measures its onnxruntime batch-1 latency (a net's cost does not depend on its weights), so an
impossible latency budget fails before any training, and the served teacher's batch throughput, which prices
its logits.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from distill_training.config import StudentConfig, TeacherConfig
from distill_training.data import Dataset
from distill_training.export import INPUT_NAME, OUTPUT_NAME, quiet_exporter
from distill_training.latency import measure_latency, seconds_per_call
from distill_training.nets import set_memory_format
from distill_training.train import autocast, autocast_dtype, build_student, build_teacher
from distill_training.views import augment
from modelrepo.onnx import open_session

WARMUP_STEPS = 2
TORCH_IMPORT_S = 2.0  # what a fresh worker process spends importing torch here, before it loads the data


@dataclass(frozen=True)
class Speeds:
    """Seconds per unit of work on this machine, as measured (with the 1-minute load average then)."""

    teacher_epoch_s: list[float]  # per member: one training epoch, side by side with the others
    teacher_alone_s: float  # the first member's epoch when it trains alone, on `teacher_alone_threads`
    teacher_alone_threads: int  # one thread or every core, whichever measured faster
    teacher_forward_s: list[float]  # per member: its share of the served graph's pass over the training images
    student_epoch_s: dict[str, float]  # per candidate spec: one training epoch on one thread
    pool_start_s: float  # starting a worker process: importing torch and loading the data
    load_1min: float
    seconds: float  # what measuring took


def _train_step_s(model: nn.Module, data: Dataset, batch_size: int, dtype: torch.dtype | None, calls: int) -> float:
    """A training step as the loops take it: a random batch gathered from the whole training split (its cache
    misses cost as much as a small net's compute), shifted and flipped, forward, backward, AdamW."""
    optimizer = torch.optim.AdamW(model.parameters())
    gen = torch.Generator().manual_seed(0)
    model.train()

    def step() -> None:
        idx = torch.randint(0, len(data.train_x), (batch_size,), generator=gen)
        xb = augment(data.train_x[idx], gen).contiguous(memory_format=torch.channels_last)
        with autocast(dtype):
            loss = F.cross_entropy(model(xb), data.train_y[idx])
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        optimizer.step()

    return seconds_per_call(step, calls, warmup=WARMUP_STEPS)


@torch.no_grad()
def _forward_s(model: nn.Module, x: torch.Tensor, calls: int) -> float:
    model.eval()
    xb = x.contiguous(memory_format=torch.channels_last)
    return seconds_per_call(lambda: model(xb), calls, warmup=WARMUP_STEPS)


def _teacher_speed(tc: TeacherConfig, data: Dataset, calls: int, threads: int) -> tuple[float, float]:
    """(seconds per training epoch on `threads` threads, seconds per PyTorch forward pass over the training
    images on every core) of one member; `planning` prices the logits with onnxruntime's throughput instead."""
    x = data.train_x[: tc.batch_size]
    model = set_memory_format(build_teacher(tc, data), torch.channels_last)
    forward = _forward_s(model, x, calls) / len(x)
    every_core = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        step = _train_step_s(model, data, tc.batch_size, autocast_dtype(tc.precision), calls)
    finally:
        torch.set_num_threads(every_core)
    n = len(data.train_x)
    return step * math.ceil(n / tc.batch_size) + forward * len(data.val_x), forward * n


def _student_speed(cfg: StudentConfig, data: Dataset, calls: int) -> float:
    """Seconds per training epoch of one student on `cfg.threads` threads, validation pass included."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        x = data.train_x[: cfg.batch_size]
        model = set_memory_format(build_student(cfg, data), torch.channels_last)
        step = _train_step_s(model, data, cfg.batch_size, None, calls)
        forward = _forward_s(model, x, calls) / len(x)
    finally:
        torch.set_num_threads(threads)
    return step * math.ceil(len(data.train_x) / cfg.batch_size) + forward * len(data.val_x)


def calibrate(
    members: list[TeacherConfig],
    candidates: dict[str, StudentConfig],
    data: Dataset,
    *,
    calls: int,
    cores: int,
    data_load_s: float,
) -> Speeds:
    """Time `calls` training steps (after a warm-up) of every member (on its share of the `cores` when the
    members train side by side, and the first alone on one and on every core) and of every candidate."""
    start = time.perf_counter()
    torch.manual_seed(0)
    shared = max(1, cores // min(len(members), cores))
    measured: dict[str, tuple[float, float]] = {}
    for tc in members:  # members of one architecture train at one speed: measure it once
        measured.setdefault(tc.architecture, _teacher_speed(tc, data, calls, shared))
    # Alone, a member takes every core, or one thread where cores shared with other jobs make every op of a
    # multi-threaded net wait for its slowest thread (measured 10x slower on a 2-core machine under load).
    alone = {shared: measured[members[0].architecture][0]}
    for threads in {1, cores} - {shared}:
        alone[threads] = _teacher_speed(members[0], data, calls, threads)[0]
    alone_threads = min(alone, key=lambda t: alone[t])
    students = {spec: _student_speed(cfg, data, calls) for spec, cfg in candidates.items()}
    return Speeds(
        teacher_epoch_s=[measured[tc.architecture][0] for tc in members],
        teacher_alone_s=alone[alone_threads],
        teacher_alone_threads=alone_threads,
        teacher_forward_s=[measured[tc.architecture][1] for tc in members],
        student_epoch_s=students,
        pool_start_s=data_load_s + TORCH_IMPORT_S,
        load_1min=os.getloadavg()[0],
        seconds=time.perf_counter() - start,
    )


@dataclass(frozen=True)
class GraphLatency:
    latency_us: dict[str, float]  # batch-1 p50 per graph
    batch_s: float  # seconds per image of the `batched` graph in batches of 256 on every core


def _draft_export(model: nn.Module, image_shape: tuple[int, int, int], path: Path, opset: int) -> Path:
    """The TorchScript exporter: ten times faster than the dynamo exporter that publishes models, and the
    graphs it writes measure the same batch-1 latency (14.0 vs 13.6 µs for a cnn:16-32, within the noise), which
    is all an estimate before training needs."""
    with quiet_exporter(), torch.no_grad():
        torch.onnx.export(
            model.eval(),
            (torch.zeros(2, *image_shape),),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    return path


def _batch_seconds(path: Path, image_shape: tuple[int, int, int], calls: int, batch: int = 256) -> float:
    """Seconds per image of an ONNX model run in batches on every core (how teacher logits are computed)."""
    sess = open_session(path)
    x = np.zeros((batch, *image_shape), np.float32)
    name = sess.get_inputs()[0].name
    return seconds_per_call(lambda: sess.run(None, {name: x}), calls, warmup=WARMUP_STEPS) / batch


def graph_latencies(
    models: dict[str, nn.Module],
    image_shape: tuple[int, int, int],
    *,
    opset: int,
    threads: int,
    runs: int,
    batched: str,
) -> GraphLatency:
    """Export each (untrained) net to ONNX and measure its onnxruntime batch-1 latency, in interleaved rounds;
    and the batch throughput of the graph named `batched`."""
    with tempfile.TemporaryDirectory(prefix="distill-latency-") as tmp:
        paths = {
            name: _draft_export(m, image_shape, Path(tmp) / f"{i}.onnx", opset)
            for i, (name, m) in enumerate(models.items())
        }
        times = measure_latency(paths, threads=threads, runs=runs)
        batch_s = _batch_seconds(paths[batched], image_shape, calls=3)
    return GraphLatency({name: float(np.percentile(t, 50)) * 1e6 for name, t in times.items()}, batch_s)
