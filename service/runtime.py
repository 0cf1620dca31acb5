"""One model version in one onnxruntime session: integrity check, load, warm-up, run. Knows nothing of HTTP."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from modelrepo.card import ModelCard, TensorSpec
from modelrepo.datatypes import NUMPY_DTYPES, from_onnx
from modelrepo.layout import model_path, sha256_file
from modelrepo.onnx import open_session
from service.settings import ThreadConfig

Tensors = dict[str, np.ndarray]


class LoadError(Exception):
    """The model cannot be served; the message says why."""


@dataclass(frozen=True)
class RunResult:
    outputs: Tensors
    compute_s: float


def _check_signature(actual: list[ort.NodeArg], expected: TensorSpec, kind: str) -> None:
    by_name = {arg.name: arg for arg in actual}
    arg = by_name.get(expected.name)
    if arg is None:
        raise LoadError(f"the ONNX {kind}s are {sorted(by_name)}, the card declares {expected.name!r}")
    datatype = from_onnx(arg.type)
    if datatype != expected.datatype:
        raise LoadError(f"ONNX {kind} {expected.name!r} is {datatype}, the card declares {expected.datatype}")
    if len(arg.shape) != len(expected.shape):
        raise LoadError(f"ONNX {kind} {expected.name!r} has shape {arg.shape}, the card declares {expected.shape}")


class ModelRuntime:
    """A loaded, verified model version. `run` is thread-safe (onnxruntime sessions are)."""

    def __init__(self, card: ModelCard, version: int, session: ort.InferenceSession) -> None:
        self.card = card
        self.version = version
        self.session = session
        self.input_spec = card.input
        self.output_spec = card.output
        self._output_names = [card.output.name]

    @classmethod
    def load(cls, repo: Path, card: ModelCard, threads: ThreadConfig) -> ModelRuntime:
        version = card.latest_version
        path = model_path(repo, card.name, version)
        if not path.is_file():
            raise LoadError(f"{path} does not exist")
        record = card.versions[version]
        digest = sha256_file(path)
        if digest != record.sha256:
            raise LoadError(f"sha256 of {path} is {digest}, the card says {record.sha256}: refusing to serve it")
        try:
            session = open_session(
                path,
                intra_op_threads=threads.intra_op_threads,
                inter_op_threads=threads.inter_op_threads,
                allow_spinning=threads.allow_spinning,
            )
        except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
            raise LoadError(f"onnxruntime cannot load {path}: {exc}") from exc
        _check_signature(session.get_inputs(), card.input, "input")
        _check_signature(session.get_outputs(), card.output, "output")
        return cls(card, version, session)

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def role(self) -> str:
        return self.card.role

    def run(self, inputs: Tensors) -> RunResult:
        start = time.perf_counter()
        values = self.session.run(self._output_names, inputs)
        elapsed = time.perf_counter() - start
        return RunResult(dict(zip(self._output_names, values, strict=True)), elapsed)

    def example_input(self, rows: int) -> Tensors:
        spec = self.input_spec
        shape = [rows if d == -1 else d for d in spec.shape]
        return {spec.name: np.zeros(shape, dtype=NUMPY_DTYPES[spec.datatype])}

    def warmup(self, runs: int, max_batch_size: int) -> tuple[float, float]:
        """Run single rows and full batches; return the fastest time of each in seconds (the fastest is the
        least disturbed by other processes, so choices made from it do not depend on a busy moment)."""
        single = min(self.run(self.example_input(1)).compute_s for _ in range(runs))
        full = min(self.run(self.example_input(max_batch_size)).compute_s for _ in range(runs))
        return single, full
