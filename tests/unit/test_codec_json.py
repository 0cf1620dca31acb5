"""The v2 JSON decoder: flat float data goes straight from simdjson into numpy; every other form of data takes
numpy's general conversion, with the same results and the same errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from service.codec import parse_infer_request
from service.errors import BadRequest


def body(data: object, datatype: str = "FP32", shape: list[int] | None = None) -> bytes:
    tensor = {"name": "x", "datatype": datatype, "shape": shape or [2, 3], "data": data}
    return json.dumps({"inputs": [tensor]}).encode()


def decoded(raw: bytes) -> np.ndarray:
    (tensor,) = parse_infer_request(raw, None).inputs
    return tensor.array


@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64"])
def test_flat_floats_equal_numpys_conversion(datatype: str) -> None:
    values = [0.1, -2.5, 3.0, 1e-8, 65504.0, 7.25]
    got = decoded(body(values, datatype))
    expected = np.asarray(values, dtype=got.dtype).reshape(2, 3)
    assert got.dtype == {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}[datatype]
    np.testing.assert_array_equal(got, expected)


def test_integers_in_float_data_and_nested_data_are_accepted() -> None:
    np.testing.assert_array_equal(decoded(body([1, 2, 3, 4, 5, 6])), np.arange(1, 7, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(decoded(body([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])), decoded(body([1, 2, 3, 4, 5, 6])))


def test_integer_datatypes_keep_their_range_checks() -> None:
    np.testing.assert_array_equal(
        decoded(body([1, 2, 3, 4, 5, 6], "INT8")), np.arange(1, 7, dtype=np.int8).reshape(2, 3)
    )
    with pytest.raises(BadRequest, match="INT8"):
        decoded(body([1, 2, 3, 4, 5, 300], "INT8"))
    with pytest.raises(BadRequest, match="INT32"):
        decoded(body([1, 2, 3, 4, 5, 6.5], "INT32"))


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ([1.0, 2.0, 3.0, 4.0, 5.0, True], "numbers of datatype FP32"),
        ([1.0, 2.0, 3.0, 4.0, 5.0, None], "numbers of datatype FP32"),
        ([1.0, 2.0, 3.0, 4.0, 5.0, "6"], "numbers of datatype FP32"),
        ([1.0, 2.0, 3.0, 4.0, 5.0, [6.0, 7.0]], "evenly nested"),  # an array hidden among the numbers
        ([1.0, 2.0, 3.0, 4.0, 5.0], "needs 6 elements"),
        ([[1.0, 2.0, 3.0], [4.0, 5.0]], "evenly nested"),
    ],
)
def test_bad_data_is_a_clear_error(data: object, words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        decoded(body(data))


def test_overflowing_numbers_are_malformed_json_and_float32_overflow_is_inf() -> None:
    with pytest.raises(BadRequest, match="malformed JSON"):
        decoded(b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1e400]}]}')
    assert np.isinf(decoded(body([1e39, 0, 0, 0, 0, 0]))).any()  # the data plane rejects it as non-finite


def test_a_document_still_referenced_does_not_break_the_next_parse() -> None:
    try:
        decoded(body([1.0, 2.0, 3.0, 4.0, 5.0, "6"]))
    except BadRequest as exc:
        kept: BaseException | None = exc  # its traceback keeps the parsed document alive
    np.testing.assert_array_equal(decoded(body([1, 2, 3, 4, 5, 6])), np.arange(1, 7, dtype=np.float32).reshape(2, 3))
    assert kept is not None
