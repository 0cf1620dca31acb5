"""One model version in one onnxruntime session: integrity check, load, warm-up, run. Knows nothing of HTTP."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.card import ModelCard, TensorSpec, model_path, sha256_file
from service.settings import ThreadConfig

# v2 protocol datatype <-> numpy dtype (little-endian, as the binary extension sends them).
NUMPY_DTYPES: dict[str, np.dtype[np.generic]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_ORT_TYPES = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64", "tensor(int8)": "INT8", "tensor(int16)": "INT16", "tensor(int32)": "INT32",
    "tensor(int64)": "INT64", "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
}  # fmt: skip

Tensors = dict[str, np.ndarray]


class LoadError(Exception):
    """The model cannot be served; the message says why."""


@dataclass(frozen=True)
class RunResult:
    outputs: Tensors
    compute_s: float


def session_options(threads: ThreadConfig) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads.intra_op_threads
    options.inter_op_num_threads = threads.inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    spin = "1" if threads.allow_spinning else "0"
    # Spinning threads burn idle cores that the other model and the HTTP loop need.
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return options


def _check_signature(actual: list[ort.NodeArg], expected: TensorSpec, kind: str) -> None:
    by_name = {arg.name: arg for arg in actual}
    arg = by_name.get(expected.name)
    if arg is None:
        raise LoadError(f"the ONNX {kind}s are {sorted(by_name)}, the card declares {expected.name!r}")
    datatype = _ORT_TYPES.get(arg.type, arg.type)
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
            session = ort.InferenceSession(
                str(path), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
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
