"""The real server (uvicorn subprocess) driven by the standard v2 client, `tritonclient.http`."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from servers import Server, run_service
from tiny_models import add_model, slow_model
from tritonclient.utils import InferenceServerException

from modelrepo.layout import model_path

MODELS = {"tiny-teacher": "teacher", "tiny-student": "student"}


def expected(repo: Path, name: str, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model_path(repo, name, 1)), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["logits"], {"input": x})[0])


@pytest.fixture
def client(server: Server) -> triton.InferenceServerClient:
    c = triton.InferenceServerClient(server.host_port, concurrency=4)
    yield c
    c.close()


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    for name in MODELS:
        assert client.is_model_ready(name) and client.is_model_ready(name, "1")
        meta = client.get_model_metadata(name)
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
        assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    assert not client.is_model_ready("nope")
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.get_model_metadata("nope")


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("name", list(MODELS))
def test_infer(client: triton.InferenceServerClient, model_repo: Path, name: str, binary: bool) -> None:
    x = np.random.default_rng(0).normal(0, 1, (4, 1, 28, 28)).astype(np.float32)
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    outputs = [triton.InferRequestedOutput("logits", binary_data=binary)]
    result = client.infer(name, [tensor], outputs=outputs, request_id=f"{name}-{binary}")
    assert result.get_response()["id"] == f"{name}-{binary}"
    np.testing.assert_allclose(result.as_numpy("logits"), expected(model_repo, name, x), rtol=1e-5, atol=1e-5)


def test_concurrent_requests_get_their_own_answers(client: triton.InferenceServerClient, model_repo: Path) -> None:
    xs = [np.full((1, 1, 28, 28), i / 10, dtype=np.float32) for i in range(24)]
    pending = []
    for x in xs:  # tritonclient.http is gevent-based: its own async_infer gives concurrency
        tensor = triton.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        pending.append(client.async_infer("tiny-student", [tensor]))
    got = [np.asarray(p.get_result().as_numpy("logits")) for p in pending]
    want = expected(model_repo, "tiny-student", np.concatenate(xs))
    np.testing.assert_allclose(np.concatenate(got), want, rtol=1e-5, atol=1e-5)


def test_bad_input_is_a_client_error(client: triton.InferenceServerClient) -> None:
    x = np.zeros((1, 784), dtype=np.float32)
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException, match=r"expected \[-1, 1, 28, 28\]"):
        client.infer("tiny-student", [tensor])


def test_full_queue_answers_503_with_retry_after(model_repo: Path, tmp_path: Path) -> None:
    add_model(model_repo, "slow", slow_model(depth=60), "teacher")
    env = {"DISTILL_MODEL_OVERRIDES": '{"slow": {"max_batch_size": 1, "max_queue_size": 1}}'}
    rows = 16  # ~50 ms of the slow model per request here, so the 12 requests overlap however slowly they connect
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows, 1, 28, 28], "data": [0.0] * 784 * rows}]}
    with run_service(model_repo, tmp_path / "slow.log", env) as server:
        url = f"{server.url}/v2/models/slow/infer"
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            responses = list(pool.map(lambda _: httpx.post(url, json=body, timeout=60), range(12)))
    statuses = sorted(r.status_code for r in responses)
    assert 200 in statuses and 503 in statuses and set(statuses) == {200, 503}
    rejected = next(r for r in responses if r.status_code == 503)
    assert rejected.headers["retry-after"] == "1" and "overloaded" in rejected.json()["error"]


def test_compressed_request(client: triton.InferenceServerClient, model_repo: Path) -> None:
    x = np.random.default_rng(1).normal(0, 1, (2, 1, 28, 28)).astype(np.float32)
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer("tiny-student", [tensor], request_compression_algorithm="gzip")
    np.testing.assert_allclose(result.as_numpy("logits"), expected(model_repo, "tiny-student", x), rtol=1e-5, atol=1e-5)
