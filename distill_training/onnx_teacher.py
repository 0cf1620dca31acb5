"""A teacher brought as an ONNX file and run in onnxruntime: what it takes, and its class scores on raw pixels.

What it takes is read from its graph (input name, datatype, layout, channels, size, batch axis) and completed
from the config or a JSON sidecar next to the file (`<file stem>.json`, keys `layout`, `scale`, `mean`, `std`,
`output`; the config's values win): the normalisation, where the graph does not do it itself, and the size of a
dynamic axis. The result is exactly what its model card will say, so the service feeds it as training did.
Its outputs may be logits or probabilities (a graph ending in softmax): `output_kind` tells them apart.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import onnx
import onnxruntime as ort
from pydantic import ValidationError
from tqdm import tqdm

from distill_training.config import DataConfig, OnnxTeacherConfig
from distill_training.data import target_shape
from modelrepo.card import OutputKind, Preprocessing, TensorSpec
from modelrepo.datatypes import NUMPY_DTYPES, from_onnx
from modelrepo.layout import sha256_file
from modelrepo.onnx import open_session
from modelrepo.pixels import model_input

IMPORTED_ARCHITECTURE: Final = "imported"  # the architecture its card records: not one of ours
INPUT_DATATYPES: Final = ("UINT8", "FP16", "FP32", "FP64")
SIDECAR_KEYS: Final = ("layout", "scale", "mean", "std", "output")
LOG_FLOOR: Final = 1e-12  # probabilities of 0 become log(1e-12), not -inf, for the KD loss


class OnnxTeacherError(Exception):
    """A teacher file that cannot be used as given; the message names the fix (the CLI's exit code 2)."""


@dataclass(frozen=True)
class OnnxTeacher:
    """The teacher file and what it takes and gives, as its card records them (batch axis -1)."""

    path: Path
    sha256: str
    input: TensorSpec
    output: TensorSpec
    preprocessing: Preprocessing
    one_row_at_a_time: bool  # the graph's batch axis is fixed at 1
    parameters: int

    @property
    def classes(self) -> int:
        return self.output.shape[1]

    def scores(self, pixels: np.ndarray, *, batch_size: int, desc: str | None = None) -> np.ndarray:
        """Class scores (N, K) float32 for raw uint8 pixels (N, C, H, W), in batches (rows of 1 for a graph
        whose batch is fixed at 1), with a progress bar when `desc` is given."""
        session = open_session(self.path)
        step = 1 if self.one_row_at_a_time else batch_size
        out = []
        with tqdm(total=len(pixels), desc=desc, unit="img", disable=desc is None) as bar:
            for start in range(0, len(pixels), step):
                x = model_input(pixels[start : start + step], self.preprocessing, self.input.datatype)
                out.append(np.asarray(session.run([self.output.name], {self.input.name: x})[0], dtype=np.float32))
                bar.update(len(x))
        return np.concatenate(out) if out else np.zeros((0, self.classes), dtype=np.float32)


def output_kind(scores: np.ndarray) -> OutputKind:
    """Probabilities when every row lies in [0, 1] and sums to 1 (a softmax at the end), else logits."""
    in_range = bool(np.all((scores >= -1e-6) & (scores <= 1 + 1e-6)))
    return "probabilities" if in_range and bool(np.allclose(scores.sum(axis=1), 1.0, atol=1e-3)) else "logits"


def as_logits(scores: np.ndarray, kind: OutputKind) -> np.ndarray:
    """What the KD loss takes: logits as they are, probabilities as log-probabilities (softmax(log p) = p)."""
    return scores if kind == "logits" else np.log(np.maximum(scores, LOG_FLOOR)).astype(np.float32)


def _session(path: Path) -> ort.InferenceSession:
    if not path.is_file():
        raise OnnxTeacherError(f"teacher file {path} does not exist or is not a file: pass your classifier's .onnx")
    try:
        return open_session(path)
    except Exception as err:  # onnxruntime raises several unrelated types for a file it cannot load
        reason = str(err).splitlines()[0][:200]
        raise OnnxTeacherError(
            f"{path} is not an ONNX model onnxruntime can load ({reason}): export your classifier to ONNX "
            "(torch.onnx.export, tf2onnx, ...) and pass that file"
        ) from None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _sidecar(path: Path) -> dict[str, Any]:
    """`<stem>.json` next to the teacher, checked key by key; {} when there is none."""
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return {}
    try:
        given = json.loads(sidecar.read_text())
    except ValueError as err:
        raise OnnxTeacherError(f"{sidecar} is not valid JSON: {err}") from None
    if not isinstance(given, dict) or set(given) - set(SIDECAR_KEYS):
        raise OnnxTeacherError(f"{sidecar} must be a JSON object with keys among {', '.join(SIDECAR_KEYS)}")
    for key in ("mean", "std"):
        if key in given and not isinstance(given[key], list):
            given[key] = [given[key]]
    numbers_ok = all(_number(v) for key in ("mean", "std") for v in given.get(key, []))
    strings_ok = all(isinstance(given.get(key, ""), str) for key in ("layout", "output"))
    if not numbers_ok or not _number(given.get("scale", 0)) or not strings_ok:
        raise OnnxTeacherError(
            f"{sidecar}: mean and std must be numbers (one, or one per channel), scale a number, layout and "
            "output strings"
        )
    return given


def _given(cfg: OnnxTeacherConfig, path: Path) -> dict[str, Any]:
    """The sidecar's settings, overridden by those the config sets."""
    flags = {"layout": cfg.layout, "scale": cfg.scale, "mean": list(cfg.mean), "std": list(cfg.std)}
    given = _sidecar(path) | {key: value for key, value in (flags | {"output": cfg.output}).items() if value}
    if not all(_number(v) for key in ("mean", "std") for v in given.get(key, [])) or not _number(given.get("scale", 0)):
        raise OnnxTeacherError("--mean, --std and --scale must be finite numbers")
    return given


def _fixed(dim: Any) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def _layout(arg: ort.NodeArg, asked: str) -> str:
    if asked:
        if asked not in ("NCHW", "NHWC"):
            raise OnnxTeacherError(f"layout must be NCHW or NHWC, got {asked!r}")
        return asked
    nchw, nhwc = _fixed(arg.shape[1]) in (1, 3), _fixed(arg.shape[3]) in (1, 3)
    if nchw != nhwc:
        return "NCHW" if nchw else "NHWC"
    raise OnnxTeacherError(
        f"cannot tell whether the teacher's input {arg.name!r} shaped {arg.shape} is NCHW or NHWC: "
        "pass --layout NCHW or --layout NHWC"
    )


def _dim(graph: Any, asked: int | None, what: str, flag: str) -> int:
    """A size the graph fixes (the config may only repeat it), or the config's where the graph leaves it open."""
    fixed = _fixed(graph)
    if fixed is not None:
        if asked is not None and asked != fixed:
            raise OnnxTeacherError(f"the teacher takes {what} {fixed}, but {asked} was asked for: drop {flag}")
        return fixed
    if asked is None:
        raise OnnxTeacherError(f"the teacher's input leaves its {what} open ({graph!r}): give it with {flag}")
    return asked


def _input(
    session: ort.InferenceSession, given: dict[str, Any], data: DataConfig
) -> tuple[ort.NodeArg, str, tuple[int, int, int]]:
    """The input's NodeArg, layout and (C, H, W); a clear error for anything the card cannot describe."""
    target_shape(data)  # a bad data.channels or data.image_size is the data's error, named as such
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise OnnxTeacherError(
            f"the teacher takes {len(inputs)} inputs ({[i.name for i in inputs]}); distill needs one image input"
        )
    arg = inputs[0]
    if len(arg.shape) != 4:
        raise OnnxTeacherError(
            f"the teacher's input {arg.name!r} has shape {arg.shape}; distill needs (batch, C, H, W) or "
            "(batch, H, W, C)"
        )
    batch = _fixed(arg.shape[0])
    if batch is not None and batch != 1:
        raise OnnxTeacherError(
            f"the teacher's input {arg.name!r} has a fixed batch of {batch}: export it with a dynamic batch axis "
            "(or a batch of 1, which is run row by row)"
        )
    layout = _layout(arg, str(given.get("layout", "")))
    dims = arg.shape[1:] if layout == "NCHW" else [arg.shape[3], arg.shape[1], arg.shape[2]]
    height, width = data.image_size if data.image_size else (None, None)
    c = _dim(dims[0], data.channels or None, "channels", "--channels")
    if c not in (1, 3):
        raise OnnxTeacherError(
            f"the teacher's input {arg.name!r} has {c} channels; distill feeds 1 (greyscale) or 3 (RGB)"
        )
    return arg, layout, (c, _dim(dims[1], height, "height", "--size"), _dim(dims[2], width, "width", "--size"))


def _per_channel(values: list[float], channels: int, default: float, what: str) -> list[float]:
    if not values:
        return [default] * channels
    if len(values) == 1:
        return [float(values[0])] * channels
    if len(values) != channels:
        raise OnnxTeacherError(f"{what} has {len(values)} values for {channels} channels: give one, or one per channel")
    return [float(v) for v in values]


def _preprocessing(datatype: str, given: dict[str, Any], layout: str, shape: tuple[int, int, int]) -> Preprocessing:
    c, h, w = shape
    integer = NUMPY_DTYPES[datatype].kind in "iu"
    mean = _per_channel(list(given.get("mean", [])), c, 0.0, "mean")
    std = _per_channel(list(given.get("std", [])), c, 1.0, "std")
    scale = float(given.get("scale", 0.0))
    if integer and (scale not in (0.0, 1.0) or any(mean) or any(s != 1.0 for s in std)):
        raise OnnxTeacherError(
            f"the teacher's input is {datatype}: it takes raw pixels (0-255) and normalises inside its graph, "
            "so --scale, --mean and --std do not apply to it; drop them"
        )
    try:
        fields = {"height": h, "width": w, "channels": c, "layout": layout, "mean": mean, "std": std}
        return Preprocessing.model_validate(fields | {"scale": scale or (1.0 if integer else 1 / 255)})
    except ValidationError as err:
        raise OnnxTeacherError(f"the teacher's preprocessing is invalid: {err.errors()[0]['msg']}") from None


def _output(session: ort.InferenceSession, asked: str) -> ort.NodeArg:
    outputs = {o.name: o for o in session.get_outputs()}
    name = asked or next(iter(outputs))
    if name not in outputs:
        raise OnnxTeacherError(f"the teacher has no output {name!r}; its outputs are {list(outputs)}: pass --output")
    if from_onnx(outputs[name].type) not in ("FP16", "FP32", "FP64"):
        raise OnnxTeacherError(
            f"the teacher's output {name!r} is {outputs[name].type}; distill needs float class scores"
        )
    return outputs[name]


def _classes(session: ort.InferenceSession, arg: ort.NodeArg, output: str, shape: list[int], datatype: str) -> int:
    """The number of class scores, from one run on a blank image (which also shows that the graph runs)."""
    blank = np.zeros([1, *shape], dtype=NUMPY_DTYPES[datatype])
    try:
        scores = np.asarray(session.run([output], {arg.name: blank})[0])
    except Exception as err:  # onnxruntime's errors for a graph that fails on its own declared input
        raise OnnxTeacherError(f"the teacher fails on a blank input shaped {blank.shape}: {str(err)[:300]}") from None
    if scores.ndim != 2 or scores.shape[0] != 1 or scores.shape[1] < 2:
        raise OnnxTeacherError(
            f"the teacher's output {output!r} is shaped {list(scores.shape)} for one image; distill needs (batch, "
            "classes) scores, with at least 2 classes (pass --output to pick another)"
        )
    return int(scores.shape[1])


def _parameters(path: Path) -> int:
    """Weights in initializers and Constant nodes; a teacher that keeps them in external files is refused, since
    its repository copy must be one file whose sha256 the card can pin."""
    model = onnx.load(str(path), load_external_data=False)
    tensors = list(model.graph.initializer)
    tensors += [a.t for node in model.graph.node if node.op_type == "Constant" for a in node.attribute if a.t.dims]
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in tensors):
        raise OnnxTeacherError(
            f"{path} keeps its weights in external data files: save it as one file "
            "(onnx.save(onnx.load(path), out), under 2 GB) and pass that"
        )
    count = sum(int(np.prod(t.dims)) for t in tensors)
    if count == 0:
        raise OnnxTeacherError(f"{path} has no weights (no initializers or constants): is it a trained classifier?")
    return count


def open_teacher(cfg: OnnxTeacherConfig, data: DataConfig) -> OnnxTeacher:
    """The teacher `cfg.path` as its card will describe it; an OnnxTeacherError that names the fix otherwise.
    `data.channels` and `data.image_size` give the sizes its graph leaves open (and must agree with the rest)."""
    path = Path(cfg.path)
    session = _session(path)
    given = _given(cfg, path)
    arg, layout, (c, h, w) = _input(session, given, data)
    datatype = from_onnx(arg.type)
    if datatype not in INPUT_DATATYPES:
        raise OnnxTeacherError(
            f"the teacher's input {arg.name!r} is {arg.type}; distill feeds {', '.join(INPUT_DATATYPES)}"
        )
    shape = [c, h, w] if layout == "NCHW" else [h, w, c]
    output = _output(session, str(given.get("output", "")))
    classes = _classes(session, arg, output.name, shape, datatype)
    return OnnxTeacher(
        path=path,
        sha256=sha256_file(path),
        input=TensorSpec.model_validate({"name": arg.name, "datatype": datatype, "shape": [-1, *shape]}),
        output=TensorSpec.model_validate(
            {"name": output.name, "datatype": from_onnx(output.type), "shape": [-1, classes]}
        ),
        preprocessing=_preprocessing(datatype, given, layout, (c, h, w)),
        one_row_at_a_time=_fixed(arg.shape[0]) == 1,
        parameters=_parameters(path),
    )
