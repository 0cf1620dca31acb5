"""Open Inference Protocol v2 tensors on the wire: JSON (parsed by simdjson) and Triton's binary data extension.

No pydantic on this path: simdjson parses the JSON header, and a flat array of numbers goes from the parsed
document into numpy in one call, without a Python object per element (about half the cost of a 784-float body
when orjson built the list, measured here). Nested or unusual data takes numpy's general conversion. A few type
checks replace per-element validation; every problem is a `BadRequest` that says what was expected.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import simdjson

from modelrepo.datatypes import NUMPY_DTYPES
from service.errors import BadRequest


@dataclass(frozen=True)
class InputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    array: np.ndarray


@dataclass(frozen=True)
class ParsedInferRequest:
    """A decoded v2 infer request (its OpenAPI documentation is `service.schemas.InferRequest`)."""

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


# The kinds of numpy array that JSON data may parse to, per kind of datatype: booleans are BOOL only, integers
# also fit floats.
_JSON_KINDS = {"b": "b", "i": "biu", "u": "biu", "f": "iuf"}


def _plain(value: Any) -> Any:
    """A parsed value as plain Python (dict, list, str, number, bool, None)."""
    if isinstance(value, simdjson.Object):
        return value.as_dict()
    if isinstance(value, simdjson.Array):
        return value.as_list()
    return value


def _fields(obj: simdjson.Object) -> dict[str, Any]:
    """An object's members, containers left as lazy proxies (`items()` would copy them whole). A dict, because
    simdjson's own `get` of a missing key costs a C++ exception."""
    return {key: obj[key] for key in obj}


def _not_numbers(name: str, datatype: str) -> BadRequest:
    return BadRequest(f"input {name!r}: data must be numbers of datatype {datatype} in a flat or evenly nested array")


def _flat_floats(data: simdjson.Array, count: int, dtype: np.dtype[np.generic]) -> np.ndarray | None:
    """A flat array of `count` numbers as float `dtype` straight from the document, without a Python object per
    value; None where the data is not a flat float array of that length. TypeError: a value is not a number."""
    if dtype.kind != "f" or len(data) != count or count == 0 or isinstance(data[0], simdjson.Array):
        return None
    values = np.frombuffer(data.as_buffer(of_type="d"), dtype=np.float64)  # flattens any nested arrays
    if values.size != count:  # arrays hidden among the numbers
        return None
    with np.errstate(all="ignore"):  # an overflowing float becomes inf, rejected later as non-finite
        return values.astype(dtype)


def _json_data(data: Any, name: str, datatype: str, dtype: np.dtype[np.generic], count: int) -> np.ndarray:
    if isinstance(data, simdjson.Array):
        try:
            fast = _flat_floats(data, count, dtype)
        except TypeError:  # true, null, a string or an object among the values
            raise _not_numbers(name, datatype) from None
        if fast is not None:
            return fast
    data = _plain(data)
    if not isinstance(data, list):
        raise BadRequest(f"input {name!r}: data must be a JSON array (flat or nested), got {type(data).__name__}")
    try:
        # numpy would silently read "6" or true as 6.0 or 1.0, None as NaN, and truncate 1.5 to 1.
        probe = np.asarray(data)
        if probe.size and probe.dtype.kind not in _JSON_KINDS[dtype.kind]:
            raise ValueError(f"values of kind {probe.dtype.kind}")
        with np.errstate(all="ignore"):  # an overflowing float becomes inf, rejected later as non-finite
            return np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        raise _not_numbers(name, datatype) from None


def _input(raw: Any, binary: memoryview, offset: int) -> tuple[InputTensor, int]:
    if isinstance(raw, simdjson.Object):  # everything but the data as plain Python: a few small values
        raw = {key: value if key == "data" else _plain(value) for key, value in _fields(raw).items()}
    else:
        raw = _plain(raw)  # not an object: the error below names its JSON type
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
        array = _json_data(spec.get("data"), name, str(datatype), dtype, count)
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


_parsers = threading.local()


def _parse_json(header: bytes) -> Any:
    """Parse with this thread's reusable simdjson parser. A parser refuses to parse again while objects of its
    last document are alive (e.g. held by a traceback); a new parser then takes over."""
    parser: simdjson.Parser | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = simdjson.Parser()
    try:
        return parser.parse(header)
    except RuntimeError as exc:
        if not str(exc).startswith("Tried to re-use a parser"):
            raise  # a parse error that simdjson reports as RuntimeError, e.g. DEPTH_ERROR
    _parsers.parser = simdjson.Parser()
    return _parsers.parser.parse(header)


def parse_infer_request(body: bytes, header_length: str | None) -> ParsedInferRequest:
    """Decode a v2 infer request: a JSON object, optionally followed by binary tensor data."""
    header, binary = _split_body(body, header_length)
    try:
        doc = _parse_json(header)
    except (ValueError, RuntimeError) as exc:  # simdjson's parse errors, e.g. "TAPE_ERROR: ..."
        raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(doc, simdjson.Object):
        raise BadRequest(f"the infer request must be a JSON object, got {type(_plain(doc)).__name__}")
    doc = _fields(doc)
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"'id' must be a string, got {_plain(request_id)!r}")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, simdjson.Array) or len(raw_inputs) == 0:
        raise BadRequest("'inputs' must be a non-empty JSON array of input tensors")
    params = _object(_plain(doc.get("parameters", {})), "'parameters'")
    binary_output = bool(params.get("binary_data_output", False))
    inputs, offset = [], 0
    for raw in raw_inputs:
        tensor, offset = _input(raw, binary, offset)
        inputs.append(tensor)
    if offset != len(binary):
        raise BadRequest(f"{len(binary) - offset} bytes of binary data follow the inputs that no input claims")
    return ParsedInferRequest(request_id, inputs, _outputs(_plain(doc.get("outputs")), binary_output), binary_output)


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
