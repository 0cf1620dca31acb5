"""A v2 request's input declaration (name, datatype, shape, rows) checked against the model before its data is
read; for a large JSON body, before the body is parsed at all (simdjson parses whole documents, some 2 ms per MB
here, holding the GIL): the declaration is read from its first few KB."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import simdjson

from modelrepo.card import TensorSpec
from service.body import check_rows
from service.errors import BadRequest, PayloadTooLarge
from service.jsondoc import fields, parse_json, plain


@dataclass(frozen=True)
class ModelSignature:
    """What a model takes and gives: a request is checked against it before its data is read."""

    model: str
    input: TensorSpec
    output: str
    max_rows: int


MAX_DIMS = 32  # more than any model takes; a longer shape is refused before it is read


def parse_shape(raw: Any, name: str) -> tuple[int, ...]:
    if isinstance(raw, simdjson.Array) and len(raw) > MAX_DIMS:
        raise BadRequest(f"input {name!r}: shape has {len(raw)} dimensions; at most {MAX_DIMS}")
    dims = raw.as_list() if isinstance(raw, simdjson.Array) else raw
    if not isinstance(dims, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise BadRequest(f"input {name!r}: shape must be a list of non-negative integers, got {plain(raw)!r}")
    return tuple(dims)


def check_declared(expected: ModelSignature, name: str, datatype: str, shape: tuple[int, ...]) -> None:
    """The declared datatype and shape against the model's input, and the rows against the limit."""
    model, spec = expected.model, expected.input
    if datatype != spec.datatype:
        raise BadRequest(f"input {name!r} of model {model!r} has datatype {datatype}, expected {spec.datatype}")
    if len(shape) != len(spec.shape) or any(e not in (-1, a) for a, e in zip(shape, spec.shape, strict=True)):
        raise BadRequest(
            f"input {name!r} of model {model!r} has shape {list(shape)}, expected {spec.shape} (-1 = any batch size)"
        )
    try:
        check_rows(shape[0], expected.max_rows)
    except PayloadTooLarge as exc:  # a v2 request over the model's max_batch_size is a 400, as in Triton
        raise BadRequest(exc.message) from None


EARLY_CHECK_BYTES = 256 << 10  # a JSON body this large has its input's declaration checked before it is parsed
_DATA_KEY = re.compile(rb'[{,]\s*"data"\s*:')  # outside a string: a quote inside one is escaped
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_CLOSE = {ord("{"): b"}", ord("["): b"]"}


def _declared_input(header: bytes) -> Any:
    """The members of an input that precede its "data", read from the first 4 KB of a large body without
    parsing the rest (simdjson parses a whole document, some 2 ms per MB here); None unless the body is laid out
    as clients write it, {"inputs": [{"name": ..., "shape": ..., "datatype": ..., "data": ...}]}."""
    match = _DATA_KEY.search(header, 0, 4096)
    if match is None:
        return None
    head = header[: match.start() + 1].removesuffix(b",")  # everything before the "data" member
    stack = [c for c in re.sub(_STRING, b'""', head) if c in b"{}[]"]
    opened: list[int] = []
    for c in stack:
        if c in _CLOSE:
            opened.append(c)
        elif not opened or _CLOSE[opened.pop()][0] != c:
            return None
    if [bytes([c]) for c in opened] != [b"{", b"[", b"{"]:  # root object, its array, an input object
        return None
    try:
        doc = parse_json(head + b"".join(_CLOSE[c] for c in reversed(opened)))
    except (ValueError, RuntimeError):
        return None
    last = list(doc.keys())[-1] if isinstance(doc, simdjson.Object) and len(doc) else None
    return doc if last == "inputs" else None


def check_early(header: bytes, expected: ModelSignature) -> None:
    """Refuse a large body whose first input cannot be the model's, before the body is parsed."""
    doc = _declared_input(header)
    if doc is None:
        return
    inputs = [fields(item) if isinstance(item, simdjson.Object) else {} for item in doc["inputs"]]
    name, datatype, shape = (inputs[-1].get(key) for key in ("name", "datatype", "shape"))
    if not isinstance(name, str):
        return  # not declared before its data: the whole body is parsed and checked as any other
    if len(inputs) > 1 or name != expected.input.name:
        names = [i.get("name") for i in inputs]
        raise BadRequest(
            f"model {expected.model!r} takes exactly one input {expected.input.name!r}, got inputs {names}"
        )
    if isinstance(datatype, str) and shape is not None:
        check_declared(expected, name, datatype, parse_shape(shape, name))
