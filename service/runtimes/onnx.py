"""The onnxruntime runtime: one ONNX model version in one CPU session."""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import onnxruntime as ort

from modelrepo.card import ModelCard, TensorSpec
from modelrepo.datatypes import from_onnx
from modelrepo.onnx import open_session
from service.runtimes.base import LoadError, RunResult, Tensors, fastest_runs
from service.settings import ThreadConfig


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


class OnnxRuntime:
    """An ONNX model in an onnxruntime session whose signature matches its card. Sessions are thread-safe."""

    platform: ClassVar[str] = "onnxruntime_onnx"

    def __init__(self, session: ort.InferenceSession, input_spec: TensorSpec, output_name: str) -> None:
        self.session = session
        self._input_spec = input_spec
        self._output_names = [output_name]
        # A graph exported with a fixed batch of 1 (its card still says -1): batches run row by row.
        self._one_row_at_a_time = session.get_inputs()[0].shape[0] == 1 and input_spec.shape[0] == -1

    @classmethod
    def load(cls, path: Path, card: ModelCard, threads: ThreadConfig) -> OnnxRuntime:
        try:
            session = open_session(
                path,
                intra_op_threads=threads.intra_op_threads,
                inter_op_threads=threads.inter_op_threads,
                allow_spinning=threads.allow_spinning,
            )
        except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
            detail = f"onnxruntime cannot load {path}: {exc}"
            raise LoadError(f"onnxruntime cannot load its {path.name}", detail=detail) from exc
        _check_signature(session.get_inputs(), card.input, "input")
        _check_signature(session.get_outputs(), card.output, "output")
        return cls(session, card.input, card.output.name)

    def run(self, inputs: Tensors) -> RunResult:
        start = time.perf_counter()
        values = self._row_by_row(inputs) if self._one_row_at_a_time else self.session.run(self._output_names, inputs)
        elapsed = time.perf_counter() - start
        return RunResult(dict(zip(self._output_names, values, strict=True)), elapsed)

    def _row_by_row(self, inputs: Tensors) -> list[np.ndarray]:
        rows = len(next(iter(inputs.values())))
        runs = [self.session.run(self._output_names, {k: v[i : i + 1] for k, v in inputs.items()}) for i in range(rows)]
        return [np.concatenate([run[j] for run in runs]) for j in range(len(self._output_names))]

    def warmup(self, runs: int, max_batch_size: int) -> tuple[float, float]:
        return fastest_runs(self.run, self._input_spec, runs, max_batch_size)
