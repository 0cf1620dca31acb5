"""Hostile but well-formed input: huge finite values, declared shapes that cannot match, odd JSON (NUL in keys,
duplicate keys, a byte-order mark) read alike by v2 and `/v1`, and the messages of the image and label limits."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from servers import wait_ready

from service.app import create_app
from service.settings import Settings

STUDENT = "tiny-student"
INFER = f"/v2/models/{STUDENT}/infer"
ROW = [0.0] * 784


def tensor(data: object, shape: list[int] | None = None) -> dict[str, object]:
    return {"name": "input", "datatype": "FP32", "shape": shape or [1, 1, 28, 28], "data": data}


def post_json(client: TestClient, path: str, raw: bytes) -> tuple[int, str]:
    response = client.post(path, content=raw, headers={"content-type": "application/json"})
    return response.status_code, response.json().get("error", "")


def binary_infer(client: TestClient, x: np.ndarray) -> tuple[int, str]:
    header = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape),
                    "parameters": {"binary_data_size": x.nbytes}}]
    }  # fmt: skip
    head = json.dumps(header).encode()
    headers = {"content-type": "application/octet-stream", "inference-header-content-length": str(len(head))}
    response = client.post(INFER, content=head + x.tobytes(), headers=headers)
    return response.status_code, response.text


def test_a_huge_finite_input_is_422_out_of_range_never_null(client: TestClient) -> None:
    x = np.full((1, 1, 28, 28), 3e38, dtype=np.float32)
    status, text = binary_infer(client, x)
    assert status == 422 and "out of the range" in text and "null" not in text, text
    status, error = post_json(client, INFER, json.dumps({"inputs": [tensor(x.ravel().tolist())]}).encode())
    assert status == 422 and "out of the range" in error
    assert binary_infer(client, np.zeros((1, 1, 28, 28), dtype=np.float32))[0] == 200


def test_a_declared_shape_that_cannot_match_is_refused_before_its_data_is_read(client: TestClient) -> None:
    data = "[" + ",".join(["[0.5]"] * 1_000_000) + "]"  # ~6 MB of nested arrays
    raw = ('{"inputs": [{"name": "input", "datatype": "FP32", "shape": [4000000], "data": ' + data + "}]}").encode()
    status, error = post_json(client, INFER, raw)
    assert status == 400 and "shape [4000000]" in error and "expected [-1, 1, 28, 28]" in error, error
    many_rows = json.dumps({"inputs": [tensor([], [100_000, 1, 28, 28])]}).encode()
    status, error = post_json(client, INFER, many_rows)
    assert status == 400 and "max_request_rows" in error  # the declared rows, before the (empty) data


def test_data_longer_than_its_shape_is_refused_by_count(client: TestClient) -> None:
    nested = [[[0.5] * 28] * 28] * 400  # 400 rows' worth of numbers under a 1-row shape
    status, error = post_json(client, INFER, json.dumps({"inputs": [tensor(nested)]}).encode())
    assert status == 400 and "needs 784 elements, but data has 313600" in error


def test_outputs_and_inputs_are_checked_against_the_model(client: TestClient) -> None:
    twice = {"inputs": [tensor(ROW)], "outputs": [{"name": "logits"}] * 2}
    assert "more than once" in post_json(client, INFER, json.dumps(twice).encode())[1]
    many = {"inputs": [tensor([0.0], [1])] * 2_000}  # under EARLY_CHECK_BYTES: parsed whole
    status, error = post_json(client, INFER, json.dumps(many).encode())
    assert status == 400 and "and 1996 more" in error, error


def test_a_nul_in_a_json_key_is_400(client: TestClient) -> None:
    raw = b'{"inputs": [], "a\\u0000b": 1}'
    for path in (INFER, "/v1/classify"):
        status, error = post_json(client, path, raw)
        assert status == 400 and "U+0000" in error, (path, error)


@pytest.mark.parametrize(
    ("v2", "v1"),
    [
        (b'{"inputs": [%s], "inputs": [%s]}', b'{"inputs": [[%s]], "inputs": [[%s]]}'),
        (b'{"inputs": [%s], "id": "a", "id": "b"}', b'{"inputs": [[%s]], "labels": [1], "labels": [2]}'),
    ],
)
def test_duplicate_keys_are_refused_alike_by_v2_and_v1(client: TestClient, v2: bytes, v1: bytes) -> None:
    infer_tensor = json.dumps(tensor(ROW)).encode()
    row = b", ".join([b"0"] * 784)
    for path, raw in ((INFER, v2.replace(b"%s", infer_tensor)), ("/v1/classify", v1.replace(b"%s", row))):
        status, error = post_json(client, path, raw)
        assert status == 400 and "more than once" in error, (path, error)


def test_a_byte_order_mark_is_read_alike_by_v2_and_v1(client: TestClient) -> None:
    bom = b"\xef\xbb\xbf"
    assert post_json(client, INFER, bom + json.dumps({"inputs": [tensor(ROW)]}).encode())[0] == 200
    assert post_json(client, "/v1/classify", bom + json.dumps({"inputs": [ROW]}).encode())[0] == 200


def png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("L", size).save(out, format="PNG")
    return out.getvalue()


def test_image_limit_messages_name_the_real_limits(model_repo: Path) -> None:
    settings = Settings(models_dir=model_repo, intra_op_threads=1, warmup_runs=1, max_image_pixels=1000,
                        max_request_rows=2)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        files = [("files", (f"{i}.png", png((10, 10)), "image/png")) for i in range(5)]
        response = client.post("/v1/classify", files=files)
        assert response.status_code == 413 and "more than 2 files" in response.json()["error"], response.text
        exact = [("files", ("a.png", png((40, 25)), "image/png")), ("files", ("b.png", png((2, 2)), "image/png"))]
        error = client.post("/v1/classify", files=exact).json()["error"]
        assert "'b.png'" in error and "max_image_pixels (1000)" in error and "already have 1000" in error, error
        alone = client.post("/v1/classify", files=[("files", ("c.png", png((50, 50)), "image/png"))]).json()
        assert "2500 pixels, more than max_image_pixels (1000)" in alone["error"]


@pytest.mark.parametrize("labels", ["0_1", "\u0663", "1" * 5000, "0,1"])
def test_label_fields_are_plain_decimal_integers(client: TestClient, labels: str) -> None:
    files = [("files", ("a.png", png((28, 28)), "image/png"))]
    response = client.post("/v1/classify", files=files, data={"labels": labels})
    assert response.status_code == 422, response.text
    words = "1 rows" if "," in labels else "comma-separated integers"
    assert words in response.json()["error"]


def test_an_object_with_a_huge_number_of_keys_is_refused_at_once(client: TestClient) -> None:
    """simdjson looks a key up by a scan: reading 600,000 keys one by one took 9 minutes of event loop."""
    keys = b",".join(b'"k%d": 1' % i for i in range(50_000))
    for path, raw in ((INFER, b'{"inputs": [], ' + keys + b"}"), ("/v1/classify", b'{"inputs": [[0]], ' + keys + b"}")):
        status, error = post_json(client, path, raw)
        assert status == 400 and "50001 keys" in error and "at most 64" in error, (path, error)
