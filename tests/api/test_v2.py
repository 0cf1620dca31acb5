"""Open Inference Protocol v2 over the in-process app: health, metadata, JSON inference, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from servers import wait_loaded, wait_ready
from tiny_models import add_model, failing_warmup_model, fragile_model, make_card, mlp_student

from modelrepo.layout import model_path, write_card
from service.app import create_app
from service.settings import Settings

STUDENT, TEACHER = "tiny-student", "tiny-teacher"


def expected_logits(repo: Path, name: str, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model_path(repo, name, 1)), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["logits"], {"input": x})[0])


def infer_body(x: np.ndarray, **extra: object) -> dict[str, object]:
    tensor = {"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.reshape(-1).tolist()}
    return {"inputs": [tensor], **extra}


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, 1, 28, 28)).astype(np.float32)


def test_health_and_server_metadata(client: TestClient) -> None:
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    meta = client.get("/v2").json()
    assert meta["name"] == "distill-serve"
    assert "binary_tensor_data" in meta["extensions"]


def test_model_metadata_and_ready(client: TestClient) -> None:
    for path in (f"/v2/models/{STUDENT}", f"/v2/models/{STUDENT}/versions/1"):
        meta = client.get(path).json()
        assert meta == {
            "name": STUDENT,
            "versions": ["1"],
            "platform": "onnxruntime_onnx",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 28, 28]}],
            "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}],
            "parameters": {"max_batch_size": 256},  # rows per request (max_request_rows)
        }
    assert client.get(f"/v2/models/{TEACHER}/ready").status_code == 200
    assert client.get(f"/v2/models/{TEACHER}/versions/1/ready").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/nope",
        "/v2/models/nope/ready",
        f"/v2/models/{STUDENT}/versions/2",
        f"/v2/models/{STUDENT}/versions/x/ready",
    ],
)
def test_unknown_model_or_version_is_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "error" in response.json()


def test_unknown_model_infer_is_404(client: TestClient) -> None:
    response = client.post("/v2/models/nope/infer", json=infer_body(rows(1)))
    assert response.status_code == 404
    assert "nope" in response.json()["error"]


@pytest.mark.parametrize("name", [STUDENT, TEACHER])
def test_infer_matches_onnxruntime(client: TestClient, model_repo: Path, name: str) -> None:
    x = rows(3)
    response = client.post(f"/v2/models/{name}/infer", json=infer_body(x, id="req-7"))
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["model_name"] == name and doc["model_version"] == "1" and doc["id"] == "req-7"
    (out,) = doc["outputs"]
    assert out["name"] == "logits" and out["datatype"] == "FP32" and out["shape"] == [3, 10]
    got = np.asarray(out["data"], dtype=np.float32).reshape(3, 10)
    np.testing.assert_allclose(got, expected_logits(model_repo, name, x), rtol=1e-5, atol=1e-5)


def test_infer_nested_data_and_versioned_path(client: TestClient, model_repo: Path) -> None:
    x = rows(2)
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 1, 28, 28], "data": x.tolist()}]}
    response = client.post(f"/v2/models/{STUDENT}/versions/1/infer", json=body)
    assert response.status_code == 200, response.text
    got = np.asarray(response.json()["outputs"][0]["data"], dtype=np.float32).reshape(2, 10)
    np.testing.assert_allclose(got, expected_logits(model_repo, STUDENT, x), rtol=1e-5, atol=1e-5)
    assert "id" not in response.json()


def test_outputs_selection(client: TestClient) -> None:
    ok = client.post(f"/v2/models/{STUDENT}/infer", json=infer_body(rows(1), outputs=[{"name": "logits"}]))
    assert ok.status_code == 200 and [o["name"] for o in ok.json()["outputs"]] == ["logits"]
    bad = client.post(f"/v2/models/{STUDENT}/infer", json=infer_body(rows(1), outputs=[{"name": "probs"}]))
    assert bad.status_code == 400 and "logits" in bad.json()["error"]


def _tensor(**changes: object) -> dict[str, object]:
    tensor: dict[str, object] = {"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": [0.0] * 784}
    tensor.update(changes)
    return tensor


@pytest.mark.parametrize(
    ("tensor", "status", "words"),
    [
        (_tensor(name="pixels"), 400, ["'input'", "pixels"]),
        (_tensor(datatype="INT64", data=[0] * 784), 400, ["INT64", "expected FP32"]),
        (_tensor(datatype="BYTES"), 400, ["BYTES", "not supported"]),
        (_tensor(shape=[1, 784], data=[0.0] * 784), 400, ["[1, 784]", "[-1, 1, 28, 28]"]),
        (_tensor(shape=[1, 1, 28, 27], data=[0.0] * 756), 400, ["[1, 1, 28, 27]", "expected"]),
        (_tensor(data=[0.0] * 783), 400, ["784 elements", "783"]),
        (_tensor(data=[[0.0] * 392, [0.0] * 391]), 400, ["evenly nested"]),
        (_tensor(data=["a"] * 784), 400, ["numbers"]),
        (_tensor(data=1.0), 400, ["JSON array"]),
        (_tensor(shape="1x784"), 400, ["shape must be"]),
        (_tensor(data=[1e39] + [0.0] * 783), 422, ["NaN or Inf"]),
        (_tensor(shape=[0, 1, 28, 28], data=[]), 422, ["empty"]),
        (_tensor(shape=[300, 1, 28, 28], data=[0.0] * 784 * 300), 400, ["300 rows", "256"]),  # as Triton
    ],
)
def test_bad_tensor_is_4xx_with_a_message(
    client: TestClient, tensor: dict[str, object], status: int, words: list[str]
) -> None:
    response = client.post(f"/v2/models/{STUDENT}/infer", json={"inputs": [tensor]})
    assert response.status_code == status, response.text
    message = response.json()["error"]
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", ["malformed JSON"]),
        (b"[1, 2]", ["JSON object"]),
        (b"{}", ["'inputs'"]),
        (b'{"inputs": []}', ["non-empty"]),
        (b'{"inputs": [1]}', ["JSON object"]),
        (b'{"id": 5, "inputs": [{}]}', ["'id'"]),
        (b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1], "data": [NaN]}]}', ["malformed JSON"]),
    ],
)
def test_malformed_request_is_400(client: TestClient, body: bytes, words: list[str]) -> None:
    response = client.post(f"/v2/models/{STUDENT}/infer", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    for word in words:
        assert word in response.json()["error"]


def test_oversized_body_is_413(model_repo: Path) -> None:
    settings = Settings(models_dir=model_repo, intra_op_threads=1, warmup_runs=1, max_body_bytes=4096)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        response = client.post(f"/v2/models/{STUDENT}/infer", json=infer_body(rows(1)))
        assert response.status_code == 413 and "4096" in response.json()["error"]


def test_bad_models_are_reported_and_others_served(model_repo: Path) -> None:
    tampered = add_model(model_repo, "tampered", mlp_student(seed=5), "student", teacher="tiny-teacher")
    tampered.write_bytes(mlp_student(seed=6).SerializeToString())
    broken = add_model(model_repo, "broken", mlp_student(seed=7), "student", teacher="tiny-teacher")
    broken.write_bytes(b"not an onnx file")
    write_card(model_repo, make_card("broken", "student", broken, teacher="tiny-teacher"))  # sha matches, file bad
    settings = Settings(models_dir=model_repo, intra_op_threads=1, warmup_runs=1)
    with TestClient(create_app(settings)) as client:
        wait_loaded(client)
        assert client.get("/v2/health/ready").status_code == 200
        for name, words in (("tampered", "sha256"), ("broken", "cannot load")):
            response = client.get(f"/v2/models/{name}/ready")
            assert response.status_code == 503 and words in response.json()["error"]
            infer = client.post(f"/v2/models/{name}/infer", json=infer_body(rows(1)))
            assert infer.status_code == 503
        assert client.get(f"/v2/models/{STUDENT}/ready").status_code == 200
        assert client.post(f"/v2/models/{STUDENT}/infer", json=infer_body(rows(1))).status_code == 200


def test_not_ready_without_models(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(models_dir=tmp_path))) as client:
        wait_loaded(client)
        response = client.get("/v2/health/ready")
        assert response.status_code == 503 and "no model" in response.json()["error"]
        assert client.get("/v2/health/live").status_code == 200


def test_openapi_documents_the_friendly_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/classify", "/v1/compare", "/v2/models/{name}"} <= set(paths)
    assert "multipart/form-data" in paths["/v1/classify"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200


def test_a_failing_run_is_a_500_naming_the_model_and_others_go_on(model_repo: Path) -> None:
    add_model(model_repo, "fragile", fragile_model(), "student", teacher="tiny-teacher")
    add_model(model_repo, "cannot-run", failing_warmup_model(), "student", teacher="tiny-teacher")
    settings = Settings(models_dir=model_repo, intra_op_threads=1, warmup_runs=1, student=STUDENT)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        warmup = client.get("/v2/models/cannot-run/ready")
        assert warmup.status_code == 503 and "warm up" in warmup.json()["error"]
        bad = rows(2)
        bad[1, 0, 0, 0] = 100.0  # out of the fragile model's lookup table
        failed = client.post("/v2/models/fragile/infer", json=infer_body(bad))
        assert failed.status_code == 500 and "'fragile'" in failed.json()["error"]
        assert client.post("/v2/models/fragile/infer", json=infer_body(rows(2))).status_code == 200
        assert client.post(f"/v2/models/{STUDENT}/infer", json=infer_body(rows(2))).status_code == 200
