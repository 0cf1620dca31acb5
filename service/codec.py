"""Open Inference Protocol v2 tensors on the wire: JSON (parsed by simdjson) and Triton's binary data extension.

No pydantic on this path: simdjson parses the JSON header, and a flat array of numbers goes from the parsed
document into numpy in one call, without a Python object per element (about half the cost of a 784-float body
when orjson built the list, measured here). Nested or unusual data takes numpy's general conversion. A few type
checks replace per-element validation; every problem is a `BadRequest` that says what was expected.

Each input's name, datatype and shape are checked against the model's input, and its rows against the row limit,
before its data is converted: a body whose declared shape cannot match costs its parse and nothing more. Every
JSON body of the service (v2 and `/v1`) goes through `json_object`, so both read the same JSON: a byte-order mark
is skipped, and a key given twice in one object is refused (parsers disagree on which one wins).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import simdjson

from modelrepo.datatypes import NUMPY_DTYPES
from service.declaration import EARLY_CHECK_BYTES, ModelSignature, check_declared, check_early, parse_shape
from service.errors import BadRequest
from service.jsondoc import fields, json_object, members, type_name


@dataclass(frozen=True)
class InputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    array: np.ndarray


@dataclass(frozen=True)
class RequestedOutput:
    binary: bool
    classes: int = 0  # Triton's classification extension: the top `classes` as "score:index:label" strings


@dataclass(frozen=True)
class ParsedInferRequest:
    """A decoded v2 infer request (its OpenAPI documentation is `service.schemas.InferRequest`)."""

    id: str | None
    inputs: list[InputTensor]
    outputs: dict[str, RequestedOutput] | None  # by name; None = every output
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


def _dtype(raw: Any, name: str) -> np.dtype[np.generic]:
    dtype = NUMPY_DTYPES.get(raw) if isinstance(raw, str) else None
    if dtype is None:
        raise BadRequest(f"input {name!r}: datatype {raw!r} is not supported; expected one of {list(NUMPY_DTYPES)}")
    return dtype


# The kinds of numpy array that JSON data may parse to, per kind of datatype: booleans are BOOL only, integers
# also fit floats.
_JSON_KINDS = {"b": "b", "i": "biu", "u": "biu", "f": "iuf"}


def _not_numbers(name: str, datatype: str) -> BadRequest:
    return BadRequest(f"input {name!r}: data must be numbers of datatype {datatype} in a flat or evenly nested array")


def _count_mismatch(name: str, shape: tuple[int, ...], found: int, hint: str = "") -> BadRequest:
    count = math.prod(shape)
    return BadRequest(f"input {name!r}: shape {list(shape)} needs {count} elements, but data has {found}{hint}")


def _json_data(data: Any, name: str, datatype: str, dtype: np.dtype[np.generic], shape: tuple[int, ...]) -> np.ndarray:
    """The data of an input, checked to hold prod(shape) numbers before any Python object is made of them."""
    if not isinstance(data, simdjson.Array):
        raise BadRequest(f"input {name!r}: data must be a JSON array (flat or nested), got {type_name(data)}")
    if dtype.kind != "b":
        try:  # every number, at any depth, in one C call: counted before a Python object is made of them
            values = np.frombuffer(data.as_buffer(of_type="d"), dtype=np.float64)
        except TypeError:  # true, null, a string or an object among the values
            raise _not_numbers(name, datatype) from None
        nested = values.size != len(data) or isinstance(data[0], simdjson.Array)  # arrays among the values
        if values.size != math.prod(shape):
            hint = f": data must be numbers of datatype {datatype} in a flat or evenly nested array" if nested else ""
            raise _count_mismatch(name, shape, values.size, hint)
        if dtype.kind == "f" and not nested:
            with np.errstate(all="ignore"):  # an overflowing float becomes inf, rejected later as non-finite
                return values.astype(dtype)
    try:  # nested (its structure is checked here) or integers (read exactly, not through float64)
        plain = data.as_list()
        # numpy would silently read "6" or true as 6.0 or 1.0, None as NaN, and truncate 1.5 to 1.
        probe = np.asarray(plain)
        if probe.size and probe.dtype.kind not in _JSON_KINDS[dtype.kind]:
            raise ValueError(f"values of kind {probe.dtype.kind}")
        with np.errstate(all="ignore"):
            return np.asarray(plain, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        raise _not_numbers(name, datatype) from None


def _inputfields(raw: Any) -> dict[str, Any]:
    """An input's members: scalars as they are, containers as lazy proxies."""
    if not isinstance(raw, simdjson.Object):
        raise BadRequest(f"each element of 'inputs' must be a JSON object, got {type_name(raw)}")
    found = fields(raw)
    if not isinstance(found.get("name"), str):
        raise BadRequest(f"every input needs a string 'name', got {type_name(found.get('name'))}")
    return found


def _input(
    spec: dict[str, Any], binary: memoryview, offset: int, expected: ModelSignature | None
) -> tuple[InputTensor, int]:
    name: str = spec["name"]
    datatype = spec.get("datatype")
    dtype = _dtype(datatype, name)
    shape = parse_shape(spec.get("shape"), name)
    if expected is not None:
        check_declared(expected, name, str(datatype), shape)
    count = math.prod(shape)
    size = members(spec.get("parameters"), f"input {name!r} parameters").get("binary_data_size")
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
        array = _json_data(spec.get("data"), name, str(datatype), dtype, shape)
        if array.size != count:
            raise _count_mismatch(name, shape, array.size)
    return InputTensor(name, str(datatype), shape, array.reshape(shape)), offset


def _classes(raw: Any, name: str) -> int:
    if raw is None:
        return 0
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
        raise BadRequest(
            f"output {name!r}: 'classification' must be a positive integer (how many classes), got {raw!r}"
        )
    return raw


def _outputs(raw: Any, binary_default: bool, expected: ModelSignature | None) -> dict[str, RequestedOutput] | None:
    """The requested outputs; each must be the model's and asked for once, so this reads no more of a long list
    than the model has outputs. None or `[]` asks for every output, as in Triton."""
    if raw is None:
        return None
    if not isinstance(raw, simdjson.Array):
        raise BadRequest("'outputs' must be a JSON array of {\"name\": ...} objects")
    if len(raw) == 0:
        return None
    wanted: dict[str, RequestedOutput] = {}
    for item in raw:
        if not isinstance(item, simdjson.Object):
            raise BadRequest(f"each element of 'outputs' must be a JSON object, got {type_name(item)}")
        spec = fields(item)
        name = spec.get("name")
        if not isinstance(name, str):
            raise BadRequest(f"every requested output needs a string 'name', got {type_name(name)}")
        if expected is not None and name != expected.output:
            raise BadRequest(f"model {expected.model!r} has no output {[name]}; its outputs are [{expected.output!r}]")
        if name in wanted:
            raise BadRequest(f"output {name!r} is requested more than once")
        parameters = members(spec.get("parameters"), f"output {name!r} parameters")
        binary = parameters.get("binary_data")
        classes = _classes(parameters.get("classification"), name)
        wanted[name] = RequestedOutput(binary_default if binary is None else bool(binary), classes)
    return wanted


def parse_infer_request(
    body: bytes, header_length: str | None, expected: ModelSignature | None = None
) -> ParsedInferRequest:
    """Decode a v2 infer request, a JSON object optionally followed by binary tensor data, for a model taking
    `expected` (None: any inputs and outputs, unchecked)."""
    header, binary = _split_body(body, header_length)
    if expected is not None and len(header) > EARLY_CHECK_BYTES:
        check_early(header, expected)
    doc = json_object(header, "the infer request")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"'id' must be a string, got {type_name(request_id)}")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, simdjson.Array) or len(raw_inputs) == 0:
        raise BadRequest("'inputs' must be a non-empty JSON array of input tensors")
    binary_output = bool(members(doc.get("parameters"), "'parameters'").get("binary_data_output", False))
    inputs, offset = _inputs(raw_inputs, binary, expected)
    if offset != len(binary):
        raise BadRequest(f"{len(binary) - offset} bytes of binary data follow the inputs that no input claims")
    outputs = _outputs(doc.get("outputs"), binary_output, expected)
    return ParsedInferRequest(request_id, inputs, outputs, binary_output)


def _inputs(
    raw_inputs: simdjson.Array, binary: memoryview, expected: ModelSignature | None
) -> tuple[list[InputTensor], int]:
    """The inputs and the bytes of binary data they took. Against a model: exactly its one input, and no more
    of a long list is read than it takes to name what was sent."""
    if expected is None:
        inputs, offset = [], 0
        for raw in raw_inputs:
            tensor, offset = _input(_inputfields(raw), binary, offset, None)
            inputs.append(tensor)
        return inputs, offset
    specs = [_inputfields(raw) for _, raw in zip(range(4), raw_inputs, strict=False)]  # enough to name them
    names = [spec["name"] for spec in specs]
    if len(raw_inputs) != 1 or names != [expected.input.name]:
        more = f" and {len(raw_inputs) - len(names)} more" if len(raw_inputs) > len(names) else ""
        raise BadRequest(
            f"model {expected.model!r} takes exactly one input {expected.input.name!r}, got inputs {names}{more}"
        )
    tensor, offset = _input(specs[0], binary, 0, expected)
    return [tensor], offset


def _bytes_blob(strings: list[str]) -> bytes:
    """BYTES elements as the binary extension sends them: each a 4-byte little-endian length, then its bytes."""
    encoded = [v.encode() for v in strings]
    return b"".join(len(b).to_bytes(4, "little") + b for b in encoded)


def _output_entry(name: str, datatype: str, array: np.ndarray, binary: bool) -> tuple[dict[str, Any], bytes | None]:
    """One output's JSON entry, and its binary data when sent as such."""
    entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
    if datatype == "BYTES":  # strings (the classification extension)
        strings = [str(v) for v in array.reshape(-1)]
        blob = _bytes_blob(strings) if binary else None
        if blob is None:
            entry["data"] = strings
    elif binary:
        blob = np.ascontiguousarray(array, dtype=NUMPY_DTYPES[datatype]).tobytes()
    else:
        blob, entry["data"] = None, np.ascontiguousarray(array).reshape(-1)
    if blob is not None:
        entry["parameters"] = {"binary_data_size": len(blob)}
    return entry, blob


def encode_infer_response(
    model: str, version: int, request_id: str | None, outputs: list[tuple[str, str, np.ndarray, bool]]
) -> tuple[bytes, int | None]:
    """Encode (name, datatype, array, binary) outputs; returns the body and, with binary data, the JSON length."""
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for output in outputs:
        entry, blob = _output_entry(*output)
        entries.append(entry)
        if blob is not None:
            blobs.append(blob)
    doc: dict[str, Any] = {"model_name": model, "model_version": str(version), "outputs": entries}
    if request_id is not None:
        doc["id"] = request_id
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)
