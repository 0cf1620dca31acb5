"""The friendly endpoints read their bodies as v2 infer does (`service.body`): compressed JSON or multipart is
inflated within `max_body_bytes`, and an encoding the service cannot undo is refused."""

from __future__ import annotations

import gzip
import io
import zlib

import numpy as np
import orjson
from fastapi.testclient import TestClient
from PIL import Image

ROWS = np.random.default_rng(0).integers(0, 256, (3, 784)).tolist()


def json_body(rows: list[list[int]]) -> bytes:
    return orjson.dumps({"inputs": rows, "labels": [0] * len(rows)})


def test_a_gzip_or_deflate_json_body_is_answered_like_a_plain_one(client: TestClient) -> None:
    plain = client.post("/v1/classify", content=json_body(ROWS), headers={"content-type": "application/json"})
    assert plain.status_code == 200, plain.text
    for encoding, compress in (("gzip", gzip.compress), ("deflate", zlib.compress)):
        headers = {"content-type": "application/json", "content-encoding": encoding}
        packed = client.post("/v1/classify", content=compress(json_body(ROWS)), headers=headers)
        assert packed.status_code == 200, packed.text
        assert packed.json()["predictions"] == plain.json()["predictions"]


def test_a_gzip_multipart_body_is_answered(client: TestClient) -> None:
    image = io.BytesIO()
    Image.fromarray(np.asarray(ROWS[0], dtype=np.uint8).reshape(28, 28), "L").save(image, format="PNG")
    boundary = "b0undary"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + image.getvalue()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"content-type": f"multipart/form-data; boundary={boundary}", "content-encoding": "gzip"}
    response = client.post("/v1/classify", content=gzip.compress(form), headers=headers)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1


def test_a_compressed_body_past_the_limit_is_413(client: TestClient) -> None:
    bomb = gzip.compress(b" " * 20_000_000)  # whitespace is valid JSON padding: only the size is wrong
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    response = client.post("/v1/compare", content=bomb, headers=headers)
    assert response.status_code == 413 and "decompressed" in response.json()["error"]


def test_an_unknown_encoding_is_415(client: TestClient) -> None:
    headers = {"content-type": "application/json", "content-encoding": "br"}
    response = client.post("/v1/classify", content=json_body(ROWS), headers=headers)
    assert response.status_code == 415 and "gzip" in response.json()["error"]
