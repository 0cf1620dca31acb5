"""A large v2 JSON body has its input's declaration checked against the model before the body is parsed: a
declaration that cannot match is refused from the first few KB; any other layout is parsed and checked as usual."""

from __future__ import annotations

import json

import pytest

from modelrepo.card import TensorSpec
from service.codec import EARLY_CHECK_BYTES, ModelSignature, parse_infer_request
from service.errors import BadRequest

SIGNATURE = ModelSignature("m", TensorSpec(name="input", shape=[-1, 1, 28, 28]), "logits", 256)
DATA = json.dumps([0.25] * 784 * 100).encode()  # 100 rows, past EARLY_CHECK_BYTES
GARBAGE = b"[" + b"not json at all, " * (EARLY_CHECK_BYTES // 16)  # what a full parse would choke on


def body(declaration: bytes, data: bytes = DATA) -> bytes:
    return b'{"inputs": [{' + declaration + b', "data": ' + data + b"}]}"


@pytest.mark.parametrize(
    ("declaration", "error", "words"),
    [
        (b'"name": "input", "datatype": "FP32", "shape": [4000000]', BadRequest, "expected [-1, 1, 28, 28]"),
        (b'"name": "input", "datatype": "INT8", "shape": [100, 1, 28, 28]', BadRequest, "expected FP32"),
        (b'"name": "pixels", "datatype": "FP32", "shape": [100, 1, 28, 28]', BadRequest, "exactly one input"),
        (b'"name": "input", "datatype": "FP32", "shape": [100000, 1, 28, 28]', BadRequest, "max_request_rows"),
    ],
)
def test_a_declaration_that_cannot_match_is_refused_before_the_body_is_parsed(
    declaration: bytes, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words.replace("[", r"\[")):
        parse_infer_request(body(declaration, GARBAGE), None, SIGNATURE)  # never reads the garbage


@pytest.mark.parametrize(
    "raw",
    [
        body(b'"name": "input", "datatype": "FP32", "shape": [100, 1, 28, 28]'),
        b'{"inputs": [{"data": ' + DATA + b', "name": "input", "datatype": "FP32", "shape": [100, 1, 28, 28]}]}',
        body(b'"name": "input", "parameters": {"data": [1]}, "datatype": "FP32", "shape": [100, 1, 28, 28]'),
        b'{"id": "a,\\"data\\": [", ' + body(b'"name": "input", "datatype": "FP32", "shape": [100, 1, 28, 28]')[1:],
        b'{"outputs": [{"name": "logits"}], '
        + body(b'"name": "input", "datatype": "FP32", "shape": [100, 1, 28, 28]')[1:],
    ],
    ids=["usual", "data-first", "data-in-parameters", "data-in-a-string", "outputs-first"],
)
def test_every_layout_of_a_valid_large_body_is_decoded(raw: bytes) -> None:
    assert len(raw) > EARLY_CHECK_BYTES
    (tensor,) = parse_infer_request(raw, None, SIGNATURE).inputs
    assert tensor.array.shape == (100, 1, 28, 28)


def test_small_bodies_are_simply_parsed() -> None:
    small = body(b'"name": "input", "datatype": "FP32", "shape": [4000000]', b"[oops")
    with pytest.raises(BadRequest, match="malformed JSON"):
        parse_infer_request(small, None, SIGNATURE)
