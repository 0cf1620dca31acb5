"""What a runtime is: the one extension point between the model registry and a model's compute.

A runtime opens one verified model file, checks it against the card's signature, and runs batches of tensors.
It knows nothing of HTTP, batching or metrics. The registry has already checked the file's sha256 against the
card before `load`, so a runtime never sees a file the card does not name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

from modelrepo.card import ModelCard, TensorSpec
from modelrepo.datatypes import NUMPY_DTYPES
from service.settings import ThreadConfig

Tensors = dict[str, np.ndarray]


class LoadError(Exception):
    """The model cannot be served. The message says why, for clients too: it names no path, checksum or file
    content; `detail` (for the log only) may."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


@dataclass(frozen=True)
class RunResult:
    outputs: Tensors
    compute_s: float  # of the whole run
    batch_rows: int = 0  # the rows of that run, when a batcher ran these outputs with others (0: unknown)

    @property
    def share_s(self) -> float:
        """The compute time of these outputs' rows: their share of the run."""
        rows = len(next(iter(self.outputs.values())))
        return self.compute_s * rows / self.batch_rows if self.batch_rows else self.compute_s


class Runtime(Protocol):
    """One loaded model version. `run` must be safe to call from a worker thread while the event loop runs."""

    platform: ClassVar[str]  # the card's `platform` this runtime serves, e.g. "onnxruntime_onnx"

    @classmethod
    def load(cls, path: Path, card: ModelCard, threads: ThreadConfig) -> Runtime:
        """Open `path` (already checked against the card); LoadError if it does not match the card's signature."""
        ...

    def run(self, inputs: Tensors) -> RunResult:
        """The card's output for a batch of the card's input; `compute_s` is the model's own time."""
        ...

    def warmup(self, runs: int, max_batch_size: int) -> tuple[float, float]:
        """Run single rows and full batches; the fastest time of each, in seconds. The registry runs a model
        on the event loop when its full batch is that fast (`inline_run_max_us`), else in a worker thread."""
        ...


def _zeros(spec: TensorSpec, rows: int) -> Tensors:
    """A batch of `rows` zero rows of the input `spec` (its dynamic axis set to `rows`)."""
    shape = [rows if d == -1 else d for d in spec.shape]
    return {spec.name: np.zeros(shape, dtype=NUMPY_DTYPES[spec.datatype])}


def fastest_runs(
    run: Callable[[Tensors], RunResult], spec: TensorSpec, runs: int, max_batch_size: int
) -> tuple[float, float]:
    """The usual warm-up: `runs` single rows, then `runs` full batches of zeros; the fastest compute time of each.
    The fastest is the least disturbed by other processes, so choices made from it do not depend on a busy moment."""
    single = min(run(_zeros(spec, 1)).compute_s for _ in range(runs))
    full = min(run(_zeros(spec, max_batch_size)).compute_s for _ in range(runs))
    return single, full
