"""Models whose input is not FP32: the v2 path converts JSON and binary data to the declared datatype."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient
from onnx import TensorProto, helper, numpy_helper
from servers import wait_ready
from tiny_models import LABELS, MEAN, OPSET, STD
from tritonclient.http import InferenceServerClient, InferInput

from modelrepo.card import ModelCard, Preprocessing, TensorSpec, VersionRecord
from modelrepo.layout import model_path, sha256_file, write_card
from service.app import create_app
from service.settings import Settings

WEIGHTS = np.arange(40, dtype=np.float32).reshape(4, 10) / 10


def int64_model() -> onnx.ModelProto:
    """INT64 [-1, 4] -> Cast -> MatMul(4 x 10) -> logits."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["input"], ["f"], to=TensorProto.FLOAT),
            helper.make_node("MatMul", ["f", "w"], ["logits"]),
        ],
        "tiny-int64",
        [helper.make_tensor_value_info("input", TensorProto.INT64, ["batch", 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(WEIGHTS, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    repo = tmp_path / "models"
    path = model_path(repo, "counts", 1)
    path.parent.mkdir(parents=True)
    onnx.save(int64_model(), path)
    record = VersionRecord(sha256=sha256_file(path), size_bytes=path.stat().st_size, parameters=40,
                           test_accuracy=0.5, method="teacher")  # fmt: skip
    card = ModelCard(
        name="counts", role="teacher", labels=LABELS, versions={1: record},
        input=TensorSpec(name="input", datatype="INT64", shape=[-1, 4]),
        output=TensorSpec(name="logits", shape=[-1, 10]),
        preprocessing=Preprocessing(height=2, width=2, mean=[MEAN], std=[STD]),
    )  # fmt: skip
    write_card(repo, card)
    with TestClient(create_app(Settings(models_dir=repo, intra_op_threads=1, warmup_runs=1))) as c:
        wait_ready(c)
        yield c


def test_int64_json_and_binary(client: TestClient) -> None:
    x = np.array([[1, 2, 3, 4], [0, 0, 0, 1]], dtype=np.int64)
    body = {"inputs": [{"name": "input", "datatype": "INT64", "shape": [2, 4], "data": x.tolist()}]}
    response = client.post("/v2/models/counts/infer", json=body)
    assert response.status_code == 200, response.text
    got = np.asarray(response.json()["outputs"][0]["data"], dtype=np.float32).reshape(2, 10)
    np.testing.assert_allclose(got, x.astype(np.float32) @ WEIGHTS, rtol=1e-6)

    tensor = InferInput("input", [2, 4], "INT64")
    tensor.set_data_from_numpy(x)
    raw, json_size = InferenceServerClient.generate_request_body([tensor])
    binary = client.post(
        "/v2/models/counts/infer", content=raw, headers={"Inference-Header-Content-Length": str(json_size)}
    )
    result = InferenceServerClient.parse_response_body(
        binary.content, header_length=int(binary.headers["inference-header-content-length"])
    )
    np.testing.assert_allclose(result.as_numpy("logits"), x.astype(np.float32) @ WEIGHTS, rtol=1e-6)


def test_int64_rejects_fp32_and_fractions(client: TestClient) -> None:
    as_fp32 = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1.0, 2.0, 3.0, 4.0]}]}
    response = client.post("/v2/models/counts/infer", json=as_fp32)
    assert response.status_code == 400 and "expected INT64" in response.json()["error"]
    for data in (["a", "b", "c", "d"], [1.5, 2, 3, 4], [2**63, 0, 0, 0]):
        body = {"inputs": [{"name": "input", "datatype": "INT64", "shape": [1, 4], "data": data}]}
        response = client.post("/v2/models/counts/infer", json=body)
        assert response.status_code == 400 and "INT64" in response.json()["error"], data
