"""Triton's HTTP extensions over the in-process app: model configuration, statistics, classification, every
output for `"outputs": []`, HEAD wherever GET works, 405 with Allow on infer paths, trailing slashes answered,
the row limit in the config and a 400 past it. tritonclient itself: tests/integration/test_triton_tools.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson
import pytest
from fastapi.testclient import TestClient
from scrape import metric_total
from tiny_models import LABELS

from modelrepo.layout import model_path

STUDENT, TEACHER = "tiny-student", "tiny-teacher"
INFER = f"/v2/models/{STUDENT}/infer"


def logits(repo: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model_path(repo, STUDENT, 1)), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["logits"], {"input": x})[0])


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, 1, 28, 28)).astype(np.float32)


def tensor(x: np.ndarray) -> dict[str, object]:
    return {"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.reshape(-1).tolist()}


def scrape(client: TestClient, name: str, **labels: str) -> float:
    return metric_total(client.get("/metrics").text, name, **labels)


def test_server_metadata_names_every_extension_it_answers(client: TestClient) -> None:
    extensions = client.get("/v2").json()["extensions"]
    assert sorted(extensions) == [
        "binary_tensor_data", "classification", "model_configuration", "model_repository", "statistics",
    ]  # fmt: skip
    assert client.get(f"/v2/models/{STUDENT}/config").status_code == 200  # model_configuration
    assert client.get("/v2/models/stats").status_code == 200  # statistics
    assert client.post("/v2/repository/index").status_code == 200  # model_repository


def test_config_is_the_card_and_the_batching_in_tritons_shape(client: TestClient) -> None:
    for path in (f"/v2/models/{STUDENT}/config", f"/v2/models/{STUDENT}/versions/1/config"):
        config = client.get(path).json()
        assert config["name"] == STUDENT and config["platform"] == "onnxruntime_onnx"
        assert config["max_batch_size"] == 256  # max_request_rows: the most rows one request may carry
        assert config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [1, 28, 28],
                                    "format": "FORMAT_NCHW"}]  # fmt: skip
        assert config["output"] == [{"name": "logits", "data_type": "TYPE_FP32", "dims": [10], "label_filename": ""}]
        batching = config["dynamic_batching"]
        assert batching["preferred_batch_size"] == [32] and batching["max_queue_delay_microseconds"] == 0
        assert batching["default_queue_policy"]["max_queue_size"] == 256
        assert config["instance_group"] == [{"name": STUDENT, "kind": "KIND_CPU", "count": 1}]
        assert config["version_policy"] == {"latest": {"num_versions": 1}}
        assert config["parameters"]["role"] == {"string_value": "student"}
    assert client.get("/v2/models/nope/config").status_code == 404
    assert client.get(f"/v2/models/{STUDENT}/versions/9/config").status_code == 404


def test_a_request_over_the_configured_max_batch_size_is_400(client: TestClient) -> None:
    limit = client.get(f"/v2/models/{STUDENT}/config").json()["max_batch_size"]
    over = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [limit + 1, 1, 28, 28], "data": []}]}
    response = client.post(INFER, json=over)
    assert response.status_code == 400
    assert f"{limit + 1} rows; at most {limit} per request (max_request_rows)" in response.json()["error"]


def test_statistics_count_what_was_served(client: TestClient) -> None:
    for n in (1, 3, 2):
        assert client.post(INFER, json={"inputs": [tensor(rows(n))]}).status_code == 200
    short = {**tensor(rows(1)), "data": [0.0]}
    assert client.post(INFER, json={"inputs": [short]}).status_code == 400  # never reached a run
    (stats,) = client.get(f"/v2/models/{STUDENT}/stats").json()["model_stats"]
    assert stats["name"] == STUDENT and stats["version"] == "1"
    assert stats["inference_count"] == 6 and stats["execution_count"] == 3  # rows, runs
    inference = stats["inference_stats"]
    assert inference["success"]["count"] == 3 and inference["fail"]["count"] == 0
    assert inference["queue"]["count"] == 3 and inference["compute_infer"]["count"] == 3
    # The same measurements as the Prometheus histograms, in nanoseconds.
    compute_s = scrape(client, "distill_inference_duration_seconds_sum", model=STUDENT)
    assert inference["compute_infer"]["ns"] == round(compute_s * 1e9) > 0
    queue_s = scrape(client, "distill_queue_duration_seconds_sum", model=STUDENT)
    assert inference["queue"]["ns"] == round(queue_s * 1e9)
    assert inference["success"]["ns"] >= inference["compute_infer"]["ns"]
    everyone = client.get("/v2/models/stats").json()["model_stats"]
    assert [s["name"] for s in everyone] == [STUDENT, TEACHER]
    assert everyone[1]["inference_count"] == 0
    assert client.get("/v2/models/nope/stats").status_code == 404


@pytest.mark.parametrize("binary", [False, True])
def test_classification_returns_the_top_k_as_score_index_label(
    client: TestClient, model_repo: Path, binary: bool
) -> None:
    x = rows(2, seed=3)
    wanted = {"name": "logits", "parameters": {"classification": 3, "binary_data": binary}}
    response = client.post(INFER, json={"inputs": [tensor(x)], "outputs": [wanted]})
    assert response.status_code == 200, response.text
    if binary:
        size = int(response.headers["inference-header-content-length"])
        doc, blob = orjson.loads(response.content[:size]), response.content[size:]
        strings, offset = [], 0
        while offset < len(blob):
            length = int.from_bytes(blob[offset : offset + 4], "little")
            strings.append(blob[offset + 4 : offset + 4 + length].decode())
            offset += 4 + length
    else:
        doc = response.json()
        strings = doc["outputs"][0]["data"]
    (out,) = doc["outputs"]
    assert out["datatype"] == "BYTES" and out["shape"] == [2, 3]
    expected = logits(model_repo, x)
    for row, cells in zip(expected, np.array(strings).reshape(2, 3), strict=True):
        top = np.argsort(-row)[:3]
        assert list(cells) == [f"{row[i]:f}:{i}:{LABELS[i]}" for i in top]


def test_classification_past_the_class_count_returns_every_class_and_bad_counts_are_400(client: TestClient) -> None:
    wanted = {"name": "logits", "parameters": {"classification": 50}}
    doc = client.post(INFER, json={"inputs": [tensor(rows(1))], "outputs": [wanted]}).json()
    assert doc["outputs"][0]["shape"] == [1, 10]
    for bad in (0, -1, "3", True, 1.5):
        wanted = {"name": "logits", "parameters": {"classification": bad}}
        response = client.post(INFER, json={"inputs": [tensor(rows(1))], "outputs": [wanted]})
        assert response.status_code == 400 and "'classification' must be a positive integer" in response.text, bad


def test_an_empty_outputs_list_returns_every_output(client: TestClient, model_repo: Path) -> None:
    x = rows(2)
    doc = client.post(INFER, json={"inputs": [tensor(x)], "outputs": []}).json()
    (out,) = doc["outputs"]
    assert out["name"] == "logits" and out["datatype"] == "FP32" and out["shape"] == [2, 10]
    np.testing.assert_allclose(np.reshape(out["data"], (2, 10)), logits(model_repo, x), rtol=1e-5, atol=1e-5)


GETS = [
    "/v2", "/v2/health/live", "/v2/health/ready", f"/v2/models/{STUDENT}", f"/v2/models/{STUDENT}/ready",
    f"/v2/models/{STUDENT}/versions/1", f"/v2/models/{STUDENT}/versions/1/ready", f"/v2/models/{STUDENT}/config",
    f"/v2/models/{STUDENT}/stats", "/v2/models/stats", "/metrics", "/v1/models", "/v1/stats", "/", "/docs",
    "/openapi.json", "/v2/models/nope", "/v2/models/nope/ready",
]  # fmt: skip


@pytest.mark.parametrize("path", GETS)
def test_head_answers_wherever_get_does_without_a_body(client: TestClient, path: str) -> None:
    got, head = client.get(path), client.head(path)
    assert head.status_code == got.status_code and head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", [INFER, f"/v2/models/{STUDENT}/versions/1/infer", "/v2/models/nope/infer"])
def test_a_wrong_method_on_an_infer_path_is_405_with_allow_post(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    if method != "HEAD":
        assert "inference is a POST" in response.json()["error"]


def test_a_wrong_method_elsewhere_is_405_with_allow(client: TestClient) -> None:
    response = client.get("/v1/classify")
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    response = client.delete("/v2/health/ready")
    assert response.status_code == 405 and "GET" in response.headers["allow"]


@pytest.mark.parametrize("path", ["/v2/", "/v2/health/ready/", f"/v2/models/{STUDENT}/config/", "/v1/models//"])
def test_a_trailing_slash_answers_as_the_path_without_it(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 200 and response.content == client.get(path.rstrip("/")).content


def test_a_trailing_slash_on_infer_is_inference(client: TestClient, model_repo: Path) -> None:
    x = rows(1)
    response = client.post(INFER + "/", json={"inputs": [tensor(x)]})
    assert response.status_code == 200
    np.testing.assert_allclose(
        np.reshape(response.json()["outputs"][0]["data"], (1, 10)), logits(model_repo, x), rtol=1e-5, atol=1e-5
    )
