"""Bad input beyond the protocol checks: nesting and size tricks, decompression bombs, wrong content types,
a request past its deadline, a missing or empty model repository. Each is a clear 4xx (or 503/504), never a 500."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from servers import wait_loaded, wait_ready
from tiny_models import add_model, slow_model

from service.app import create_app
from service.settings import Settings

STUDENT = "tiny-student"
INFER = f"/v2/models/{STUDENT}/infer"


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height greyscale pixels, with a few bytes of (truncated) data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )


def png(size: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (size, size)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize("path", [INFER, "/v1/classify"])
def test_deeply_nested_json_is_400(client: TestClient, path: str) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    response = client.post(path, content=b'{"inputs": ' + deep + b"}", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "malformed JSON" in response.json()["error"]


def test_nested_data_within_the_parser_limit_is_400(client: TestClient) -> None:
    data = [0.0]
    for _ in range(200):  # far more dimensions than numpy's limit
        data = [data]
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": data}]}
    response = client.post(INFER, json=body)
    assert response.status_code == 400 and "evenly nested" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"inputs": [0] * 1_000_000}, 422, ["list of rows"]),  # ~2 MB of JSON, one flat "row"
        ({"inputs": [[0] * 1_000_000]}, 422, ["784 pixel values"]),  # one enormous row
        ({"inputs": [[0] * 784] * 2, "labels": list(range(500_000))}, 422, ["500000 entries"]),
    ],
)
def test_huge_json_within_the_size_limit_is_4xx(
    client: TestClient, body: dict[str, object], status: int, words: list[str]
) -> None:
    response = client.post("/v1/classify", json=body)
    assert response.status_code == status, response.text
    for word in words:
        assert word in response.json()["error"]


def test_multipart_to_v2_infer_is_415(client: TestClient) -> None:
    response = client.post(INFER, files=[("files", ("a.png", png(28), "image/png"))])
    assert response.status_code == 415 and "/v1/classify" in response.json()["error"]


def test_decompression_bomb_is_413_before_decoding(client: TestClient) -> None:
    bomb = bomb_png(50_000, 50_000)  # 2.5 G pixels declared in a few hundred bytes
    assert len(bomb) < 1000
    response = client.post("/v1/classify", files=[("files", ("bomb.png", bomb, "image/png"))])
    assert response.status_code == 413, response.text
    assert "bomb.png" in response.json()["error"] and "max_image_pixels" in response.json()["error"]


def test_many_small_bombs_add_up_to_413(model_repo: Path) -> None:
    settings = Settings(models_dir=model_repo, intra_op_threads=1, warmup_runs=1, max_image_pixels=1_000_000)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        ok = client.post("/v1/classify", files=[("files", (f"{i}.png", png(500), "image/png")) for i in range(4)])
        assert ok.status_code == 200, ok.text  # exactly the budget
        files = [("files", (f"{i}.png", png(500), "image/png")) for i in range(5)]  # each alone is within it
        response = client.post("/v1/classify", files=files)
        assert response.status_code == 413 and "'4.png'" in response.json()["error"]


def test_a_request_past_its_deadline_is_504_and_the_server_goes_on(model_repo: Path) -> None:
    add_model(model_repo, "slow", slow_model(), "teacher")
    settings = Settings(models_dir=model_repo, intra_op_threads=1, warmup_runs=1, request_timeout_s=0.2)
    rows = np.zeros((256, 1, 28, 28), dtype=np.float32)  # ~0.7 s of the slow model here
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(rows.shape), "data": rows.ravel().tolist()}]}
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        started = time.monotonic()
        response = client.post("/v2/models/slow/infer", json=body)
        assert time.monotonic() - started < 10  # generous: the deadline is 0.2 s
        assert response.status_code == 504 and "request_timeout_s" in response.json()["error"]
        deadline = time.monotonic() + 60  # the abandoned batch finishes in its thread; then one row fits again
        one = {"inputs": [{**body["inputs"][0], "shape": [1, 1, 28, 28], "data": [0.0] * 784}]}
        while (status := client.post("/v2/models/slow/infer", json=one).status_code) != 200:
            assert status == 504 and time.monotonic() < deadline
        assert client.post(INFER, json={**one}).status_code == 200
        count = client.get("/metrics").text
        assert 'distill_request_duration_seconds_count{endpoint="infer",model="slow"}' in count


@pytest.mark.parametrize("layout", ["missing", "empty"])
def test_missing_or_empty_repository_is_not_ready_with_a_clear_message(tmp_path: Path, layout: str) -> None:
    repo = tmp_path / "models"
    if layout == "empty":
        repo.mkdir()
    with TestClient(create_app(Settings(models_dir=repo))) as client:
        wait_loaded(client)
        response = client.get("/v2/health/ready")
        assert response.status_code == 503
        assert (
            str(repo) in response.json()["error"]
            and ("does not exist" if layout == "missing" else "no models") in (response.json()["error"])
        )
        assert client.get("/v2/health/live").status_code == 200
        assert client.post(INFER, json={"inputs": []}).status_code == 404
