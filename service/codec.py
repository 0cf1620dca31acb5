"""Open Inference Protocol v2 tensors on the wire: JSON (parsed by orjson) and Triton's binary data extension.

No pydantic on this path: orjson parses the body, numpy converts each input's data in one call, and a few
type checks replace per-element validation. Every problem is a `BadRequest` that says what was expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from service.errors import BadRequest
from service.runtime import NUMPY_DTYPES


@dataclass(frozen=True)
class InputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    array: np.ndarray


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: list[InputTensor]
    outputs: dict[str, bool] | None  # requested output name -> binary; None = all
    binary_output: bool  # request parameter binary_data_output


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    if header_length is None:
        return body, memoryview(b"")
    try:
        size = int(header_length)
    except ValueError:
        raise BadRequest(f"Inference-Header-Content-Length must be an integer, got {header_length!r}") from None
    if not 0 < size <= len(body):
        raise BadRequest(f"Inference-Header-Content-Length {size} is outside the body of {len(body)} bytes")
    return body[:size], memoryview(body)[size:]


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _shape(raw: Any, name: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in raw):
        raise BadRequest(f"input {name!r}: shape must be a list of non-negative integers, got {raw!r}")
    return tuple(raw)


def _dtype(raw: Any, name: str) -> np.dtype[np.generic]:
    dtype = NUMPY_DTYPES.get(raw) if isinstance(raw, str) else None
    if dtype is None:
        raise BadRequest(f"input {name!r}: datatype {raw!r} is not supported; expected one of {list(NUMPY_DTYPES)}")
    return dtype


def _json_data(data: Any, name: str, datatype: str, dtype: np.dtype[np.generic]) -> np.ndarray:
    if not isinstance(data, list):
        raise BadRequest(f"input {name!r}: data must be a JSON array (flat or nested), got {type(data).__name__}")
    try:
        if dtype.kind in "biu" and np.asarray(data).dtype.kind not in ("b" if dtype.kind == "b" else "biu"):
            raise ValueError("not integral")  # numpy would truncate 1.5 to 1 silently
        with np.errstate(all="ignore"):  # an overflowing float becomes inf, rejected later as non-finite
            return np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest(
            f"input {name!r}: data must be numbers of datatype {datatype} in a flat or evenly nested array"
        ) from None


def _input(raw: Any, binary: memoryview, offset: int) -> tuple[InputTensor, int]:
    spec = _object(raw, "each element of 'inputs'")
    name = spec.get("name")
    if not isinstance(name, str):
        raise BadRequest(f"every input needs a string 'name', got {name!r}")
    datatype = spec.get("datatype")
    dtype = _dtype(datatype, name)
    shape = _shape(spec.get("shape"), name)
    count = math.prod(shape)
    size = _object(spec.get("parameters", {}), f"input {name!r} parameters").get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size != count * dtype.itemsize:
            raise BadRequest(
                f"input {name!r}: binary_data_size {size!r} does not match shape {list(shape)} of {datatype} "
                f"({count * dtype.itemsize} bytes)"
            )
        if offset + size > len(binary):
            raise BadRequest(f"input {name!r}: the body ends before its {size} bytes of binary data")
        array = np.frombuffer(binary[offset : offset + size], dtype=dtype)
        offset += size
    else:
        array = _json_data(spec.get("data"), name, str(datatype), dtype)
        if array.size != count:
            raise BadRequest(f"input {name!r}: shape {list(shape)} needs {count} elements, but data has {array.size}")
    return InputTensor(name, str(datatype), shape, array.reshape(shape)), offset


def _outputs(raw: Any, binary_default: bool) -> dict[str, bool] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise BadRequest("'outputs' must be a JSON array of {\"name\": ...} objects")
    wanted: dict[str, bool] = {}
    for item in raw:
        spec = _object(item, "each element of 'outputs'")
        name = spec.get("name")
        if not isinstance(name, str):
            raise BadRequest(f"every requested output needs a string 'name', got {name!r}")
        binary = _object(spec.get("parameters", {}), f"output {name!r} parameters").get("binary_data")
        wanted[name] = binary_default if binary is None else bool(binary)
    return wanted


def parse_infer_request(body: bytes, header_length: str | None) -> InferRequest:
    """Decode a v2 infer request: a JSON object, optionally followed by binary tensor data."""
    header, binary = _split_body(body, header_length)
    try:
        doc = _object(orjson.loads(header), "the infer request")
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"'id' must be a string, got {request_id!r}")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest("'inputs' must be a non-empty JSON array of input tensors")
    params = _object(doc.get("parameters", {}), "'parameters'")
    binary_output = bool(params.get("binary_data_output", False))
    inputs, offset = [], 0
    for raw in raw_inputs:
        tensor, offset = _input(raw, binary, offset)
        inputs.append(tensor)
    if offset != len(binary):
        raise BadRequest(f"{len(binary) - offset} bytes of binary data follow the inputs that no input claims")
    return InferRequest(request_id, inputs, _outputs(doc.get("outputs"), binary_output), binary_output)


def encode_infer_response(
    model: str, version: int, request_id: str | None, outputs: list[tuple[str, str, np.ndarray, bool]]
) -> tuple[bytes, int | None]:
    """Encode (name, datatype, array, binary) outputs; returns the body and, with binary data, the JSON length."""
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, datatype, array, binary in outputs:
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            blob = np.ascontiguousarray(array, dtype=NUMPY_DTYPES[datatype]).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = np.ascontiguousarray(array).reshape(-1)
        entries.append(entry)
    doc: dict[str, Any] = {"model_name": model, "model_version": str(version), "outputs": entries}
    if request_id is not None:
        doc["id"] = request_id
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)
