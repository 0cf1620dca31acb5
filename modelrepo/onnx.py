"""How every part of the project opens an ONNX model: the service, export validation, the report's latency and
the benchmarks. One set of options, so a latency measured at export is one the service can reach."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort


def open_session(
    path: Path, *, intra_op_threads: int = 0, inter_op_threads: int = 1, allow_spinning: bool = False
) -> ort.InferenceSession:
    """A CPU session, operators run one after another, every graph optimisation on. `intra_op_threads` 0 lets
    onnxruntime use every core. Spinning threads burn idle cores that a second model and the HTTP loop need, so
    they are off unless asked for."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    spin = "1" if allow_spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
