"""Friendly endpoints: classify (model, student, teacher, cascade), compare, images, accuracy, bad input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from tiny_models import LABELS, normalise

from modelrepo.layout import model_path

STUDENT, TEACHER = "tiny-student", "tiny-teacher"


def pixels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 784)).astype(np.float32)


def expected_probs(repo: Path, name: str, raw: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model_path(repo, name, 1)), providers=["CPUExecutionProvider"])
    logits = np.asarray(session.run(["logits"], {"input": normalise(raw)})[0])
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def png(raw: np.ndarray, size: tuple[int, int] = (28, 28), mode: str = "L", fmt: str = "PNG") -> bytes:
    image = Image.fromarray(raw.reshape(28, 28).astype(np.uint8), "L").convert(mode).resize(size)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize(
    ("query", "model"),
    [("", STUDENT), ("?route=student", STUDENT), ("?route=teacher", TEACHER), (f"?model={TEACHER}", TEACHER)],
)
def test_classify_arrays(client: TestClient, model_repo: Path, query: str, model: str) -> None:
    raw = pixels(4)
    body = {"inputs": [raw[0].tolist(), raw[1].reshape(28, 28).tolist(), raw[2].reshape(1, 28, 28).tolist()]}
    # Rows of one request share a shape; send the shaped ones separately and compare all four.
    response = client.post(f"/v1/classify{query}", json={"inputs": raw.tolist()})
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["model"] == model and doc["route"] == ("teacher" if model == TEACHER else "student")
    assert doc["compute_ms"] > 0
    probs = expected_probs(model_repo, model, raw)
    for row, prediction in zip(probs, doc["predictions"], strict=True):
        best = int(row.argmax())
        assert prediction["class_index"] == best and prediction["label"] == LABELS[best]
        assert prediction["answered_by"] == model
        assert prediction["probability"] == pytest.approx(float(row[best]), abs=1e-5)
        top = [t["probability"] for t in prediction["top"]]
        assert len(top) == 3 and top == sorted(top, reverse=True)
    for shaped in body["inputs"]:
        one = client.post(f"/v1/classify{query}", json={"inputs": [shaped]})
        assert one.status_code == 200, one.text
    assert one.json()["predictions"][0]["class_index"] == int(probs[2].argmax())


def test_classify_images_match_arrays(client: TestClient, model_repo: Path) -> None:
    raw = pixels(2, seed=3)
    files = [("files", (f"img{i}.png", png(raw[i]), "image/png")) for i in range(2)]
    response = client.post("/v1/classify", files=files)
    assert response.status_code == 200, response.text
    probs = expected_probs(model_repo, STUDENT, raw)
    got = [p["class_index"] for p in response.json()["predictions"]]
    assert got == probs.argmax(axis=1).tolist()
    big = client.post(
        "/v1/classify", files=[("files", ("rgb.jpg", png(raw[0], (56, 56), "RGB", "JPEG"), "image/jpeg"))]
    )
    assert big.status_code == 200 and len(big.json()["predictions"]) == 1


def test_cascade_answers_by_threshold(client: TestClient) -> None:
    raw = pixels(5).tolist()
    everyone_student = client.post("/v1/classify?route=cascade&threshold=0", json={"inputs": raw}).json()
    assert everyone_student["route"] == "cascade" and everyone_student["model"] is None
    assert {p["answered_by"] for p in everyone_student["predictions"]} == {STUDENT}
    everyone_teacher = client.post("/v1/classify?route=cascade&threshold=1", json={"inputs": raw}).json()
    assert {p["answered_by"] for p in everyone_teacher["predictions"]} == {TEACHER}
    assert everyone_teacher["compute_ms"] > 0
    found = samples(client)
    assert value(found, "distill_cascade_total", outcome="student") == 5
    assert value(found, "distill_cascade_total", outcome="teacher") == 5
    agreements = sum(
        value(found, "distill_agreement_total", student=STUDENT, teacher=TEACHER, source="cascade", outcome=o)
        for o in ("agree", "disagree")
    )
    assert agreements == 5  # only rows both models answered


def test_compare(client: TestClient, model_repo: Path) -> None:
    raw = pixels(6, seed=4)
    doc = client.post("/v1/compare", json={"inputs": raw.tolist()}).json()
    s = expected_probs(model_repo, STUDENT, raw).argmax(axis=1)
    t = expected_probs(model_repo, TEACHER, raw).argmax(axis=1)
    assert doc["student"]["model"] == STUDENT and doc["teacher"]["model"] == TEACHER
    assert [p["class_index"] for p in doc["student"]["predictions"]] == s.tolist()
    assert [p["class_index"] for p in doc["teacher"]["predictions"]] == t.tolist()
    assert doc["agree"] == (s == t).tolist()
    assert doc["agreement"] == pytest.approx(float((s == t).mean()))
    assert doc["speedup"] == pytest.approx(doc["teacher"]["compute_ms"] / doc["student"]["compute_ms"])
    found = samples(client)
    pair = {"student": STUDENT, "teacher": TEACHER, "source": "compare"}
    agreed = value(found, "distill_agreement_total", **pair, outcome="agree")
    assert agreed == (s == t).sum()


def test_labels_count_online_accuracy(client: TestClient, model_repo: Path) -> None:
    raw = pixels(8, seed=5)
    predicted = expected_probs(model_repo, STUDENT, raw).argmax(axis=1)
    labels = [int(predicted[i]) if i < 5 else (int(predicted[i]) + 1) % 10 for i in range(8)]  # 5 of 8 right
    assert client.post("/v1/classify", json={"inputs": raw.tolist(), "labels": labels}).status_code == 200
    files = [("files", ("a.png", png(raw[0]), "image/png"))]
    assert client.post("/v1/classify", files=files, data={"labels": str(labels[0])}).status_code == 200
    found = samples(client)
    assert value(found, "distill_predictions_labeled_total", model=STUDENT) == 9
    assert value(found, "distill_predictions_correct_total", model=STUDENT) == 6


def test_metrics_names_and_labels(client: TestClient) -> None:
    client.post("/v1/compare", json={"inputs": pixels(1).tolist()})
    client.post("/v1/classify", json={"inputs": pixels(1).tolist()})
    found = samples(client)
    for model, role in ((STUDENT, "student"), (TEACHER, "teacher")):
        assert value(found, "distill_inference_duration_seconds_count", model=model, role=role) >= 1
        assert value(found, "distill_inference_duration_seconds_bucket", model=model, role=role, le="1e-05") >= 0
        assert value(found, "distill_inference_requests_total", model=model, role=role, outcome="success") >= 1
        assert value(found, "distill_queue_duration_seconds_count", model=model) >= 1
        assert value(found, "distill_batch_size_count", model=model) >= 1
        assert value(found, "distill_model_parameters", model=model) == 1000
        assert value(found, "distill_model_size_bytes", model=model) > 0
    assert value(found, "distill_model_eval_accuracy", model=TEACHER) == pytest.approx(0.9)
    assert value(found, "distill_model_info", model=STUDENT, role="student", version="1", teacher=TEACHER) == 1
    assert value(found, "distill_request_duration_seconds_count", endpoint="compare", model="compare") == 1
    assert value(found, "distill_request_duration_seconds_count", endpoint="classify", model=STUDENT) == 1


ROW = [0.0] * 784


@pytest.mark.parametrize(
    ("query", "body", "status", "words"),
    [
        ("", b"{oops", 400, ["malformed JSON"]),
        ("", b'{"input": []}', 400, ['"inputs"']),
        ("", b'{"inputs": [], "extra": 1}', 400, ["unknown fields", "extra"]),
        ("", b'{"inputs": []}', 422, ["empty"]),
        ("", b'{"inputs": [[1, 2], [3]]}', 400, ["same shape"]),
        ("", b'{"inputs": [[1, 2, 3]]}', 422, ["784 pixel values", "28x28"]),
        ("", b'{"inputs": [1, 2, 3]}', 422, ["list of rows"]),
        ("", b'{"inputs": [[300' + b", 0" * 783 + b"]]}", 422, ["0..255"]),
        ("", b'{"inputs": [[1e39' + b", 0" * 783 + b"]]}", 422, ["NaN or Inf"]),
        ("", b'{"inputs": [[0' + b", 0" * 783 + b']], "labels": [1, 2]}', 422, ["2 entries for 1 rows"]),
        ("", b'{"inputs": [[0' + b", 0" * 783 + b']], "labels": [10]}', 422, ["0..9"]),
        ("", b'{"inputs": [[0' + b", 0" * 783 + b']], "labels": ["a"]}', 422, ["integer"]),
        ("?model=nope", b'{"inputs": [[0' + b", 0" * 783 + b"]]}", 404, ["nope"]),
        ("?route=sideways", b'{"inputs": []}', 422, ["route"]),
        ("?route=cascade&threshold=1.5", b'{"inputs": []}', 422, ["threshold"]),
        ("?threshold=0.5", b'{"inputs": [[0' + b", 0" * 783 + b"]]}", 400, ["cascade"]),
        (f"?route=student&model={STUDENT}", b'{"inputs": [[0' + b", 0" * 783 + b"]]}", 400, ["either"]),
    ],
)
def test_bad_classify_input_is_4xx(client: TestClient, query: str, body: bytes, status: int, words: list[str]) -> None:
    response = client.post(f"/v1/classify{query}", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    for word in words:
        assert word in response.json()["error"]


def test_too_many_rows_is_413(client: TestClient) -> None:
    response = client.post("/v1/compare", json={"inputs": [ROW] * 257})
    assert response.status_code == 413 and "max_request_rows" in response.json()["error"]


def test_bad_uploads_are_4xx(client: TestClient) -> None:
    text = client.post("/v1/classify", files=[("files", ("notes.txt", b"hello", "text/plain"))])
    assert text.status_code == 422 and "notes.txt" in text.json()["error"] and "PNG" in text.json()["error"]
    gif = io.BytesIO()
    Image.new("L", (28, 28)).save(gif, format="GIF")
    assert client.post("/v1/classify", files=[("files", ("a.gif", gif.getvalue(), "image/gif"))]).status_code == 422
    nofiles = client.post("/v1/classify", data={"labels": "1"}, files=[("other", ("a.png", b"x", "image/png"))])
    assert nofiles.status_code == 422 and "'files'" in nofiles.json()["error"]
    labels = client.post(
        "/v1/classify", files=[("files", ("a.png", png(pixels(1)), "image/png"))], data={"labels": "x"}
    )
    assert labels.status_code == 422 and "comma-separated" in labels.json()["error"]
    many = client.post("/v1/classify", files=[("files", (f"{i}.png", png(pixels(1)), "image/png")) for i in range(300)])
    assert many.status_code == 413 and "max_request_rows" in many.json()["error"]
    garbage = client.post("/v1/classify", content=b"garbage", headers={"content-type": "multipart/form-data"})
    assert garbage.status_code == 400 and "boundary" in garbage.json()["error"]
    other = client.post("/v1/classify", content=b"abc", headers={"content-type": "text/plain"})
    assert other.status_code == 415 and "application/json" in other.json()["error"]


def test_unknown_route_is_404_json(client: TestClient) -> None:
    response = client.get("/v1/nothing")
    assert response.status_code == 404 and "error" in response.json()
