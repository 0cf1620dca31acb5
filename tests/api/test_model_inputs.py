"""Each model is fed what its card says it takes: one image reaches an NCHW float student and an NHWC uint8
teacher that normalises inside its graph (as a teacher exported elsewhere often does), and a graph exported with
a fixed batch of 1 still serves batches, row by row."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from servers import wait_ready
from tiny_models import LABELS, MEAN, STD, add_model, conv_teacher, mlp_student

from modelrepo.card import ModelCard, Preprocessing, TensorSpec
from modelrepo.layout import model_path, sha256_file, write_card
from service.app import create_app
from service.settings import Settings

TEACHER, STUDENT = "nhwc-teacher", "tiny-student"


def nhwc_uint8_teacher() -> onnx.ModelProto:
    """`conv_teacher` behind Cast -> (x / 255 - mean) / std -> NHWC to NCHW, on a uint8 input of batch 1."""
    inner = conv_teacher()
    consts = [
        numpy_helper.from_array(np.array(v, dtype=np.float32), k) for k, v in (("k", 1 / 255), ("m", MEAN), ("s", STD))
    ]
    nodes = [
        helper.make_node("Cast", ["image"], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["as_float", "k"], ["scaled"]),
        helper.make_node("Sub", ["scaled", "m"], ["centred"]),
        helper.make_node("Div", ["centred", "s"], ["normalised"]),
        helper.make_node("Transpose", ["normalised"], ["input"], perm=[0, 3, 1, 2]),
        *inner.graph.node,
    ]
    graph = helper.make_graph(
        nodes,
        "nhwc-teacher",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 28, 28, 1])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [*inner.graph.initializer, *consts],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def add_nhwc_teacher(repo: Path) -> None:
    path = model_path(repo, TEACHER, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(nhwc_uint8_teacher(), path)
    card = {
        "name": TEACHER,
        "role": "teacher",
        "labels": LABELS,
        "input": TensorSpec(name="image", datatype="UINT8", shape=[-1, 28, 28, 1]),
        "output": TensorSpec(name="logits", shape=[-1, 10]),
        "preprocessing": Preprocessing(height=28, width=28, layout="NHWC", scale=1.0, mean=[0.0], std=[1.0]),
        "versions": {
            1: {"sha256": sha256_file(path), "size_bytes": path.stat().st_size, "parameters": 31400,
                "test_accuracy": 0.9, "method": "teacher", "architecture": "imported"},
        },
    }  # fmt: skip
    write_card(repo, ModelCard.model_validate(card))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    repo = tmp_path / "models"
    add_nhwc_teacher(repo)
    add_model(repo, STUDENT, mlp_student(), "student", teacher=TEACHER)
    with TestClient(create_app(Settings(models_dir=repo, intra_op_threads=1, warmup_runs=1))) as c:
        wait_ready(c)
        yield c


def reference_probs(model: onnx.ModelProto, raw: np.ndarray) -> np.ndarray:
    """What the float NCHW model gives for raw pixels (N, 28, 28), normalised as the cards say."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = ((raw.astype(np.float32) / 255.0 - MEAN) / STD).reshape(-1, 1, 28, 28).astype(np.float32)
    logits = np.asarray(session.run(["logits"], {"input": x})[0])
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def png(raw: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(raw.astype(np.uint8), "L").save(out, format="PNG")
    return out.getvalue()


def test_one_image_feeds_an_nchw_float_student_and_an_nhwc_uint8_teacher(client: TestClient) -> None:
    raw = np.random.default_rng(0).integers(0, 256, (3, 28, 28))
    files = [("files", (f"{i}.png", png(r), "image/png")) for i, r in enumerate(raw)]
    response = client.post("/v1/compare", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["teacher"]["model"], body["student"]["model"]) == (TEACHER, STUDENT)
    for side, model in (("teacher", conv_teacher()), ("student", mlp_student())):
        expected = reference_probs(model, raw)
        got = [p["probability"] for p in body[side]["predictions"]]
        assert [p["class_index"] for p in body[side]["predictions"]] == expected.argmax(axis=1).tolist()
        np.testing.assert_allclose(got, expected.max(axis=1), rtol=1e-5)


def test_a_fixed_batch_of_one_serves_a_batch_row_by_row(client: TestClient) -> None:
    raw = np.random.default_rng(1).integers(0, 256, (3, 28, 28, 1)).astype(np.uint8)
    body = {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [3, 28, 28, 1], "data": raw.ravel().tolist()}]}
    response = client.post(f"/v2/models/{TEACHER}/infer", json=body)
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    assert output["shape"] == [3, 10]
    logits = np.asarray(output["data"], dtype=np.float32).reshape(3, 10)
    expected = reference_probs(conv_teacher(), raw[..., 0])
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), expected, rtol=1e-5, atol=1e-7)
