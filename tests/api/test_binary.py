"""The v2 binary tensor data extension, with bodies encoded and decoded by tritonclient itself."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput

from modelrepo.layout import model_path

STUDENT = "tiny-student"


def x(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, 1, 28, 28)).astype(np.float32)


def logits(repo: Path, data: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model_path(repo, STUDENT, 1)), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["logits"], {"input": data})[0])


def post(client: TestClient, body: bytes, json_size: int | None) -> Any:
    headers = {"content-type": "application/octet-stream"}
    if json_size is not None:
        headers["Inference-Header-Content-Length"] = str(json_size)
    return client.post(f"/v2/models/{STUDENT}/infer", content=body, headers=headers)


def decode(response: Any) -> Any:
    header = response.headers.get("inference-header-content-length")
    return InferenceServerClient.parse_response_body(
        response.content, header_length=None if header is None else int(header)
    )


@pytest.mark.parametrize(("binary_in", "binary_out"), [(True, True), (True, False), (False, True)])
def test_round_trip(client: TestClient, model_repo: Path, binary_in: bool, binary_out: bool) -> None:
    data = x(3)
    tensor = InferInput("input", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data, binary_data=binary_in)
    outputs = [InferRequestedOutput("logits", binary_data=binary_out)]
    body, json_size = InferenceServerClient.generate_request_body([tensor], outputs, request_id="b-1")
    response = post(client, body, json_size)
    assert response.status_code == 200, response.text
    assert ("inference-header-content-length" in response.headers) == binary_out
    result = decode(response)
    assert result.get_response()["id"] == "b-1"
    np.testing.assert_allclose(result.as_numpy("logits"), logits(model_repo, data), rtol=1e-5, atol=1e-5)


def test_binary_output_by_default_parameter(client: TestClient, model_repo: Path) -> None:
    data = x(2, seed=1)
    tensor = InferInput("input", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data)
    body, json_size = InferenceServerClient.generate_request_body([tensor])  # sets binary_data_output
    response = post(client, body, json_size)
    assert response.headers["content-type"] == "application/octet-stream"
    np.testing.assert_allclose(decode(response).as_numpy("logits"), logits(model_repo, data), rtol=1e-5, atol=1e-5)


def _binary_body(size: int, extra: bytes = b"", declared: int | None = None) -> tuple[bytes, int]:
    header = (
        b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28], '
        b'"parameters": {"binary_data_size": %d}}]}' % (size if declared is None else declared)
    )
    return header + np.zeros(size // 4, dtype=np.float32).tobytes() + extra, len(header)


@pytest.mark.parametrize(
    ("body", "header", "words"),
    [
        (_binary_body(3136, declared=3132), None, ["binary_data_size 3132", "3136 bytes"]),
        (_binary_body(3132, declared=3136), None, ["ends before"]),
        (_binary_body(3136, extra=b"xx"), None, ["2 bytes"]),
        (_binary_body(3136), "abc", ["integer"]),
        (_binary_body(3136), "999999", ["outside the body"]),
    ],
)
def test_bad_binary_is_400(client: TestClient, body: tuple[bytes, int], header: str | None, words: list[str]) -> None:
    content, json_size = body
    response = client.post(
        f"/v2/models/{STUDENT}/infer",
        content=content,
        headers={"Inference-Header-Content-Length": header or str(json_size)},
    )
    assert response.status_code == 400, response.text
    for word in words:
        assert word in response.json()["error"]


def test_binary_nan_is_422(client: TestClient) -> None:
    data = np.full((1, 1, 28, 28), np.nan, dtype=np.float32)
    tensor = InferInput("input", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data)
    body, json_size = InferenceServerClient.generate_request_body([tensor])
    response = post(client, body, json_size)
    assert response.status_code == 422 and "NaN" in response.json()["error"]


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_request(client: TestClient, model_repo: Path, algorithm: str) -> None:
    data = x(2, seed=2)
    tensor = InferInput("input", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data)
    body, json_size = InferenceServerClient.generate_request_body([tensor])
    packed = gzip.compress(body) if algorithm == "gzip" else zlib.compress(body)
    headers = {"Content-Encoding": algorithm, "Inference-Header-Content-Length": str(json_size)}
    response = client.post(f"/v2/models/{STUDENT}/infer", content=packed, headers=headers)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(decode(response).as_numpy("logits"), logits(model_repo, data), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("encoding", "content", "status", "words"),
    [
        ("br", b"xx", 415, ["'br'", "gzip"]),
        ("gzip", b"not gzip", 400, ["not valid gzip"]),
        ("gzip", gzip.compress(b" " * (9 << 20)), 413, ["decompressed"]),
    ],
)
def test_bad_compressed_request(
    client: TestClient, encoding: str, content: bytes, status: int, words: list[str]
) -> None:
    response = client.post(f"/v2/models/{STUDENT}/infer", content=content, headers={"Content-Encoding": encoding})
    assert response.status_code == status, response.text
    for word in words:
        assert word in response.json()["error"]
