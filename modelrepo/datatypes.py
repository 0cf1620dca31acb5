"""The tensor datatypes, defined once: the Open Inference Protocol v2 name, its numpy dtype (little-endian, as
the binary tensor extension sends it) and its ONNX type string."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

import numpy as np

DatatypeName = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"
]


@dataclass(frozen=True)
class Datatype:
    name: DatatypeName
    numpy: np.dtype[np.generic]
    onnx: str  # as onnxruntime's NodeArg.type spells it


DATATYPES: Final[dict[str, Datatype]] = {
    d.name: d
    for d in (
        Datatype("BOOL", np.dtype(np.bool_), "tensor(bool)"),
        Datatype("UINT8", np.dtype("<u1"), "tensor(uint8)"),
        Datatype("UINT16", np.dtype("<u2"), "tensor(uint16)"),
        Datatype("UINT32", np.dtype("<u4"), "tensor(uint32)"),
        Datatype("UINT64", np.dtype("<u8"), "tensor(uint64)"),
        Datatype("INT8", np.dtype("<i1"), "tensor(int8)"),
        Datatype("INT16", np.dtype("<i2"), "tensor(int16)"),
        Datatype("INT32", np.dtype("<i4"), "tensor(int32)"),
        Datatype("INT64", np.dtype("<i8"), "tensor(int64)"),
        Datatype("FP16", np.dtype("<f2"), "tensor(float16)"),
        Datatype("FP32", np.dtype("<f4"), "tensor(float)"),
        Datatype("FP64", np.dtype("<f8"), "tensor(double)"),
    )
}
assert list(DATATYPES) == list(get_args(DatatypeName))

NUMPY_DTYPES: Final[dict[str, np.dtype[np.generic]]] = {name: d.numpy for name, d in DATATYPES.items()}
_BY_ONNX: Final[dict[str, str]] = {d.onnx: name for name, d in DATATYPES.items()}


def from_onnx(onnx_type: str) -> str:
    """The v2 name of an ONNX type string; the string itself where the protocol has no such datatype."""
    return _BY_ONNX.get(onnx_type, onnx_type)
