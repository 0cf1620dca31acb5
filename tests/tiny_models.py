"""Tiny ONNX models with valid cards, generated into a temporary model repository (no committed binaries).

`conv_teacher` and `mlp_student` have the real models' signature (input "input" FP32 [-1, 1, 28, 28], output
"logits" FP32 [-1, 10]); `slow_model` burns CPU with a chain of matrix products, for queue and overload tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from modelrepo.card import ModelCard, Preprocessing, TensorSpec, VersionRecord
from modelrepo.layout import card_path, model_path, read_card, sha256_file, write_card

LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MEAN, STD = 0.2860, 0.3530
OPSET = 17


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array.astype(np.float32), name)


def _model(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], name: str) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def conv_teacher(seed: int = 0) -> onnx.ModelProto:
    """Conv(1->4, 3x3) -> Relu -> Flatten -> Gemm(3136 -> 10)."""
    rng = np.random.default_rng(seed)
    inits = [
        _init("conv_w", rng.normal(0, 0.5, (4, 1, 3, 3))),
        _init("conv_b", rng.normal(0, 0.1, (4,))),
        _init("fc_w", rng.normal(0, 0.05, (4 * 28 * 28, 10))),
        _init("fc_b", rng.normal(0, 0.1, (10,))),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"]),
    ]
    return _model(nodes, inits, "tiny-teacher")


def mlp_student(seed: int = 1) -> onnx.ModelProto:
    """Flatten -> Gemm(784 -> 16) -> Relu -> Gemm(16 -> 10)."""
    rng = np.random.default_rng(seed)
    inits = [
        _init("w1", rng.normal(0, 0.1, (784, 16))),
        _init("b1", rng.normal(0, 0.1, (16,))),
        _init("w2", rng.normal(0, 0.5, (16, 10))),
        _init("b2", rng.normal(0, 0.1, (10,))),
    ]
    nodes = [
        helper.make_node("Flatten", ["input"], ["f"]),
        helper.make_node("Gemm", ["f", "w1", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"]),
    ]
    return _model(nodes, inits, "tiny-student")


def slow_model(depth: int = 200, seed: int = 2) -> onnx.ModelProto:
    """Flatten -> `depth` x MatMul(784 x 784) -> Gemm(784 -> 10): milliseconds per row, on purpose."""
    rng = np.random.default_rng(seed)
    eye = np.eye(784) + rng.normal(0, 1e-3, (784, 784))
    inits = [_init("w", eye), _init("fc_w", rng.normal(0, 0.05, (784, 10))), _init("fc_b", np.zeros(10))]
    nodes = [helper.make_node("Flatten", ["input"], ["h0"])]
    nodes += [helper.make_node("MatMul", [f"h{i}", "w"], [f"h{i + 1}"]) for i in range(depth)]
    nodes.append(helper.make_node("Gemm", [f"h{depth}", "fc_w", "fc_b"], ["logits"]))
    return _model(nodes, inits, "tiny-slow")


def heavy_model(copies: int = 1024, depth: int = 20, seed: int = 2) -> onnx.ModelProto:
    """`slow_model` run on `copies` copies of each row at once (then averaged): a few nodes, and a run that takes
    hundreds of milliseconds, for tests that need a teacher still busy after the student has answered."""
    rng = np.random.default_rng(seed)
    eye = np.eye(784) + rng.normal(0, 1e-3, (784, 784))
    inits = [
        _init("w", eye), _init("fc_w", rng.normal(0, 0.05, (784, 10))), _init("fc_b", np.zeros(10)),
        numpy_helper.from_array(np.array([copies, 1]), "repeats"),
        numpy_helper.from_array(np.array([copies, -1, 10]), "blocks"),
    ]  # fmt: skip
    nodes = [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("Tile", ["flat", "repeats"], ["h0"])]
    nodes += [helper.make_node("MatMul", [f"h{i}", "w"], [f"h{i + 1}"]) for i in range(depth)]
    nodes += [
        helper.make_node("Gemm", [f"h{depth}", "fc_w", "fc_b"], ["each"]),  # (copies * N, 10)
        helper.make_node("Reshape", ["each", "blocks"], ["by_copy"]),  # (copies, N, 10)
        helper.make_node("ReduceMean", ["by_copy"], ["logits"], axes=[0], keepdims=0),  # (N, 10)
    ]
    return _model(nodes, inits, "tiny-heavy")


def make_card(name: str, role: str, path: Path, *, teacher: str | None = None, version: int = 1) -> ModelCard:
    record = VersionRecord(
        sha256=sha256_file(path),
        size_bytes=path.stat().st_size,
        parameters=1000,
        test_accuracy=0.9 if role == "teacher" else 0.85,
        method="teacher" if role == "teacher" else "kd",
        config={"generated": "tests/tiny_models.py"},
    )
    return ModelCard.model_validate(
        {
            "name": name,
            "role": role,
            "teacher": teacher,
            "labels": LABELS,
            "input": TensorSpec(name="input", shape=[-1, 1, 28, 28]),
            "output": TensorSpec(name="logits", shape=[-1, 10]),
            "preprocessing": Preprocessing(height=28, width=28, mean=[MEAN], std=[STD]),
            "versions": {version: record},
        }
    )


def add_model(
    repo: Path, name: str, model: onnx.ModelProto, role: str, *, teacher: str | None = None, version: int = 1
) -> Path:
    """Write `<repo>/<name>/<version>/model.onnx` and its card; returns the ONNX path."""
    path = model_path(repo, name, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    write_card(repo, make_card(name, role, path, teacher=teacher, version=version))
    return path


def add_version(
    repo: Path, name: str, model: onnx.ModelProto, version: int, *, sha256: str | None = None, card_first: bool = False
) -> Path:
    """A new version of a model already in `repo`: its file, then its card entry (atomically), as a rollout
    writes them; `sha256` overrides the card's checksum (a broken version), `card_first` writes the card entry
    before the file."""
    path = model_path(repo, name, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(".staged")
    onnx.save(model, staged)
    card = read_card(card_path(repo, name))
    record = make_card(name, card.role, staged, teacher=card.teacher, version=version).versions[version]
    if sha256 is not None:
        record = record.model_copy(update={"sha256": sha256})
    updated = card.model_copy(update={"versions": {**card.versions, version: record}})
    if card_first:
        write_card(repo, updated)
    staged.replace(path)  # atomic: a reader finds no file or the whole of it
    if not card_first:
        write_card(repo, updated)
    return path


def make_repo(repo: Path, *, teacher: str = "tiny-teacher", student: str = "tiny-student") -> Path:
    """A repository with a conv teacher and an MLP student distilled from it."""
    add_model(repo, teacher, conv_teacher(), "teacher")
    add_model(repo, student, mlp_student(), "student", teacher=teacher)
    return repo


def normalise(pixels: np.ndarray) -> np.ndarray:
    """Raw 0..255 pixels (N, 784) -> the models' normalised input (N, 1, 28, 28)."""
    return ((pixels.astype(np.float32) / 255.0 - MEAN) / STD).reshape(-1, 1, 28, 28).astype(np.float32)


def fragile_model(seed: int = 3, table: int = 10) -> onnx.ModelProto:
    """The MLP student plus a lookup indexed by the first input value: a row whose first value is outside
    [-table, table) makes onnxruntime fail at run time (Gather out of bounds); zeros (the warm-up) work."""
    model = mlp_student(seed)
    graph = model.graph
    ints = {"start": [0], "end": [1], "axes": [1]}  # column 0 of the flattened input
    graph.initializer.extend([_init("table", np.zeros(table))])
    graph.initializer.extend([numpy_helper.from_array(np.array(v), k) for k, v in ints.items()])
    (gemm_out,) = [n for n in graph.node if n.output[0] == "logits"]
    gemm_out.output[0] = "mlp_logits"
    graph.node.extend(
        [
            helper.make_node("Slice", ["f", "start", "end", "axes"], ["first"]),  # (N, 1)
            helper.make_node("Cast", ["first"], ["index"], to=TensorProto.INT64),
            helper.make_node("Gather", ["table", "index"], ["looked_up"]),  # (N, 1), fails out of bounds
            helper.make_node("Add", ["mlp_logits", "looked_up"], ["logits"]),
        ]
    )
    onnx.checker.check_model(model)
    return model


def failing_warmup_model() -> onnx.ModelProto:
    """Loads fine but cannot run any batch: a Reshape to a fixed size that no input matches."""
    shape = numpy_helper.from_array(np.array([7, 7]), "bad_shape")
    nodes = [
        helper.make_node("Reshape", ["input", "bad_shape"], ["r"]),
        helper.make_node("ReduceSum", ["r"], ["s"], keepdims=1),
        helper.make_node("Expand", ["s", "out_shape"], ["logits"]),
    ]
    out_shape = numpy_helper.from_array(np.array([1, 10]), "out_shape")
    return _model(nodes, [shape, out_shape], "tiny-failing")
