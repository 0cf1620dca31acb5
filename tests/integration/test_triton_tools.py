"""The calls Triton tools make first, with the real `tritonclient.http` against the real server: model config,
inference statistics, classification (`class_count`), the repository index, load and unload (explicit mode,
with the token in the headers); and HEAD probes and wrong methods as load balancers and curl send them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from servers import Server, run_service
from tiny_models import LABELS, add_version, mlp_student
from tritonclient.utils import InferenceServerException

from modelrepo.layout import model_path

STUDENT, TEACHER = "tiny-student", "tiny-teacher"
TOKEN = "integration-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def explicit(model_repo: Path, tmp_path: Path) -> Iterator[Server]:
    env = {"DISTILL_MODEL_CONTROL": "explicit", "DISTILL_CONTROL_TOKEN": TOKEN}
    with run_service(model_repo, tmp_path / "service.log", env) as running:
        yield running


@pytest.fixture
def client(explicit: Server) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(explicit.host_port)
    yield c
    c.close()


def student_input(x: np.ndarray) -> list[triton.InferInput]:
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    return [tensor]


def logits(repo: Path, x: np.ndarray, version: int = 1) -> np.ndarray:
    session = ort.InferenceSession(str(model_path(repo, STUDENT, version)), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["logits"], {"input": x})[0])


def test_model_config(client: triton.InferenceServerClient) -> None:
    for version in ("", "1"):
        config = client.get_model_config(STUDENT, version)
        assert config["name"] == STUDENT and config["max_batch_size"] == 256
        assert config["input"][0]["dims"] == [1, 28, 28] and config["input"][0]["data_type"] == "TYPE_FP32"
        assert config["dynamic_batching"]["preferred_batch_size"] == [32]
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.get_model_config("nope")


def test_inference_statistics(client: triton.InferenceServerClient) -> None:
    x = np.zeros((4, 1, 28, 28), dtype=np.float32)
    for _ in range(3):
        client.infer(STUDENT, student_input(x))
    (stats,) = client.get_inference_statistics(STUDENT)["model_stats"]
    assert stats["inference_count"] == 12 and stats["execution_count"] == 3
    assert stats["inference_stats"]["success"]["count"] == 3
    assert stats["inference_stats"]["compute_infer"]["ns"] > 0
    assert [s["name"] for s in client.get_inference_statistics()["model_stats"]] == [STUDENT, TEACHER]
    assert client.get_inference_statistics(STUDENT, "1")["model_stats"][0]["version"] == "1"


@pytest.mark.parametrize("binary", [True, False])
def test_class_count(client: triton.InferenceServerClient, model_repo: Path, binary: bool) -> None:
    x = np.random.default_rng(2).normal(0, 1, (3, 1, 28, 28)).astype(np.float32)
    wanted = [triton.InferRequestedOutput("logits", binary_data=binary, class_count=2)]
    result = client.infer(STUDENT, student_input(x), outputs=wanted).as_numpy("logits")
    assert result.shape == (3, 2)
    for row, cells in zip(logits(model_repo, x), result, strict=True):
        top = np.argsort(-row)[:2]
        got = [c.decode() if isinstance(c, bytes) else c for c in cells]
        assert got == [f"{row[i]:f}:{i}:{LABELS[i]}" for i in top]


def test_repository_index_load_and_unload(
    client: triton.InferenceServerClient, model_repo: Path, explicit: Server
) -> None:
    index = client.get_model_repository_index()
    assert {(e["name"], e["version"], e["state"]) for e in index} == {(STUDENT, "1", "READY"), (TEACHER, "1", "READY")}
    with pytest.raises(InferenceServerException, match="control token"):
        client.unload_model(STUDENT)
    client.unload_model(STUDENT, headers=AUTH)
    assert not client.is_model_ready(STUDENT) and client.is_server_ready()
    assert next(e for e in client.get_model_repository_index() if e["name"] == STUDENT)["state"] == "UNAVAILABLE"
    add_version(model_repo, STUDENT, mlp_student(seed=5), 2)
    client.load_model(STUDENT, headers=AUTH)  # reads the card again: version 2 is there now
    assert client.is_model_ready(STUDENT, "2") and not client.is_model_ready(STUDENT, "1")
    x = np.ones((1, 1, 28, 28), dtype=np.float32)
    result = client.infer(STUDENT, student_input(x))
    assert result.get_response()["model_version"] == "2"
    np.testing.assert_allclose(result.as_numpy("logits"), logits(model_repo, x, 2), rtol=1e-5, atol=1e-5)
    with pytest.raises(InferenceServerException, match="not supported"):
        client.load_model(STUDENT, headers=AUTH, config="{}")


def test_load_and_unload_are_refused_when_model_control_is_off(server: Server) -> None:
    c = triton.InferenceServerClient(server.host_port)
    try:
        with pytest.raises(InferenceServerException, match="model control is 'none'"):
            c.unload_model(STUDENT, headers=AUTH)
        assert len(c.get_model_repository_index()) == 2 and c.is_model_ready(STUDENT)
    finally:
        c.close()


@pytest.mark.parametrize("path", ["/v2/health/ready", "/v2/health/live", f"/v2/models/{STUDENT}", "/metrics", "/"])
def test_head_probes_get_the_status_and_headers_without_a_body(server: Server, path: str) -> None:
    got, head = httpx.get(server.url + path), httpx.head(server.url + path)
    assert head.status_code == got.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]


def test_a_wrong_method_on_infer_is_405_with_allow(server: Server) -> None:
    for method in ("GET", "HEAD", "PUT"):
        response = httpx.request(method, f"{server.url}/v2/models/{STUDENT}/infer")
        assert response.status_code == 405 and response.headers["allow"] == "POST", method


def test_trailing_slashes_answer_without_a_redirect(server: Server) -> None:
    response = httpx.get(f"{server.url}/v2/", follow_redirects=False)
    assert response.status_code == 200 and response.json()["name"] == "distill-serve"
