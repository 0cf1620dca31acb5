"""The model card, `<repo>/<name>/config.json`: what a model is, what it takes, and how each version was made.

The card splits what is stable across versions (the interface: labels, input, output, preprocessing, platform)
from what belongs to one trained artifact (`versions[<v>]`: sha256, size, parameters, accuracy, method,
architecture, training config).

Compatibility, both ways (protobuf's rule):
- A reader goes on past fields it does not know: they are kept (`unknown_fields` lists them, for a log line)
  and never make a card invalid. A card with a higher `schema_version` than this code knows is read the same way.
- `method` and `architecture` are plain names: the writer checks them against its own tables, a reader takes
  any name. A service therefore serves a model made by a training method it has never heard of.
- A writer never writes a field the schema does not define (`write_card` refuses).

Schema versions: 1 (first); 2 adds `platform`, `versions.<v>.architecture`, `preprocessing.layout`,
`quantization`, any method name, and tolerance of unknown fields. Cards of version 1 read as version 2 with
`architecture` "unknown" and layout NCHW. 3 adds `output_kind` (a model whose output is already probabilities,
as a teacher exported elsewhere may be); older cards read with "logits". 4 adds `version_policy` (which versions
the service serves at once: the newest N, or pinned ones); older cards leave it to the service's setting. 5 adds
`ensemble` (a teacher that averages several nets lists them).
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelrepo.datatypes import DatatypeName

SCHEMA_VERSION: Final = 5
DEFAULT_PLATFORM: Final = "onnxruntime_onnx"  # Triton's name for an ONNX model run by onnxruntime

Role = Literal["teacher", "student"]
OutputKind = Literal["logits", "probabilities"]

# Model names become URL path segments and directory names.
NAME_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Methods, architectures and platforms: lower-case names that reports and dashboards print as they are.
KIND_PATTERN: Final = r"^[a-z][a-z0-9_-]{0,63}$"


class _Part(BaseModel):
    """Every part of a card: immutable, and tolerant of fields added by a newer writer (kept, not validated)."""

    model_config = ConfigDict(extra="allow", frozen=True)


class TensorSpec(_Part):
    """One named tensor of the model's signature; -1 marks a dynamic axis (the batch)."""

    name: str
    datatype: DatatypeName = "FP32"
    shape: list[int] = Field(min_length=1)

    @field_validator("shape")
    @classmethod
    def _dims_valid(cls, shape: list[int]) -> list[int]:
        if any(d == 0 or d < -1 for d in shape):
            raise ValueError(f"dimensions must be positive or -1 (dynamic), got {shape}")
        return shape


class Preprocessing(_Part):
    """How an image becomes the model's input: resize to height x width, greyscale or RGB, then
    x = (pixel * scale - mean) / std per channel, laid out as `layout` and cast to the input's datatype (an
    integer input is rounded and clipped to its range: a model that normalises inside its graph takes raw
    pixels, scale 1, mean 0, std 1).

    The friendly endpoints apply this to images and to pixel arrays; clients of the v2 protocol send the model's
    input tensor themselves.
    """

    height: int = Field(gt=0)
    width: int = Field(gt=0)
    channels: Literal[1, 3] = 1
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    scale: float = Field(default=1.0 / 255.0, gt=0)
    mean: list[float]
    std: list[float]

    @model_validator(mode="after")
    def _per_channel(self) -> Preprocessing:
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean and std need one value per channel ({self.channels})")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be positive")
        return self


class VersionRecord(_Part):
    """One exported artifact: what the file is, how it was made, and how good it measured at export."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(gt=0)
    parameters: int = Field(gt=0)
    test_accuracy: float = Field(ge=0.0, le=1.0)
    method: str = Field(pattern=KIND_PATTERN, description="how it was trained: teacher, kd, none, ...")
    architecture: str = Field(default="unknown", pattern=KIND_PATTERN, description="mlp, cnn, ...")
    config: dict[str, Any] = Field(default_factory=dict)
    created: str = ""


class Quantization(_Part):
    """How an INT8 model was made from its FP32 model, and the accuracy gate it passed."""

    method: str = Field(pattern=KIND_PATTERN, description="e.g. static-qdq or dynamic (onnxruntime)")
    calibration: str = Field(default="", description="the calibration method of a static quantization")
    fp32_model: str = Field(description="the name of the FP32 model it was quantized from")
    fp32_accuracy: float = Field(ge=0.0, le=1.0)
    int8_accuracy: float = Field(ge=0.0, le=1.0)
    max_drop: float = Field(ge=0.0, description="the gate: the most test accuracy it may lose (fraction)")


class VersionPolicy(_Part):
    """Which of a card's versions are served at once: the newest `latest` present, or exactly the `pinned` ones
    (Triton's version policy). Written as text in settings: `latest`, `latest:2`, `pinned:3` or `pinned:1,3`."""

    latest: int | None = Field(default=None, ge=1, description="serve the newest N versions present")
    pinned: list[int] | None = Field(default=None, min_length=1, description="serve exactly these versions")

    @model_validator(mode="after")
    def _one_rule(self) -> VersionPolicy:
        if (self.latest is None) == (self.pinned is None):
            raise ValueError("a version policy is either 'latest' (a count) or 'pinned' (versions), not both")
        if self.pinned is not None and any(v < 1 for v in self.pinned):
            raise ValueError("pinned versions are positive integers")
        return self

    @classmethod
    def parse(cls, text: str) -> VersionPolicy:
        """`latest`, `latest:N`, `pinned:V[,V...]`; ValueError saying what is accepted otherwise."""
        kind, colon, arg = text.strip().partition(":")
        try:
            if kind == "latest" and not colon:
                return cls(latest=1)
            if kind == "latest":
                return cls(latest=int(arg))
            if kind == "pinned" and arg:
                return cls(pinned=[int(v) for v in arg.split(",")])
        except ValueError:
            pass
        raise ValueError(f"version policy {text!r}: expected 'latest', 'latest:N' or 'pinned:V[,V...]'")

    def candidates(self, present: list[int]) -> tuple[list[int], int]:
        """The versions among those `present` that may be served, newest first, and how many to serve: the first
        that load. So a newest version that fails to load leaves the one before it served."""
        newest_first = sorted(present, reverse=True)
        if self.latest is not None:
            return newest_first, self.latest
        pinned = [v for v in newest_first if v in (self.pinned or [])]
        return pinned, len(pinned)

    def __str__(self) -> str:
        return f"latest:{self.latest}" if self.latest is not None else "pinned:" + ",".join(map(str, self.pinned or []))


class EnsembleMember(_Part):
    """One net of an ensemble, as it measured on its own when the ensemble was exported."""

    name: str
    architecture: str = Field(pattern=KIND_PATTERN)
    parameters: int = Field(gt=0)
    test_accuracy: float = Field(ge=0.0, le=1.0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the member's own ONNX export")


class Ensemble(_Part):
    """A model that is several nets in one ONNX graph: how their outputs are combined, and what each one is."""

    combine: str = Field(
        default="mean-logits", pattern=KIND_PATTERN, description="mean-logits: the members' logits averaged"
    )
    members: list[EnsembleMember] = Field(min_length=2)


class ModelCard(_Part):
    """The model card, `<repo>/<name>/config.json`."""

    schema_version: int = Field(default=SCHEMA_VERSION, ge=1)
    name: str
    role: Role
    teacher: str | None = None
    task: Literal["image-classification"] = "image-classification"
    platform: str = Field(default=DEFAULT_PLATFORM, pattern=KIND_PATTERN, description="the runtime that runs it")
    labels: list[str] = Field(min_length=2)
    input: TensorSpec
    output: TensorSpec
    output_kind: OutputKind = Field(
        default="logits", description="what the output holds: logits (softmax gives probabilities) or probabilities"
    )
    preprocessing: Preprocessing
    quantization: Quantization | None = None  # set on an INT8 copy of another model
    version_policy: VersionPolicy | None = Field(
        default=None, description="which versions to serve at once; unset: the service's setting (latest)"
    )
    ensemble: Ensemble | None = None  # set on a model that averages several nets
    versions: dict[int, VersionRecord] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name_valid(cls, name: str) -> str:
        if not NAME_PATTERN.match(name):
            raise ValueError(f"model name {name!r} must match {NAME_PATTERN.pattern}")
        return name

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        if self.role == "student" and not self.teacher:
            raise ValueError("a student card must name its teacher")
        if self.output.shape[-1] != len(self.labels):
            raise ValueError(f"output has {self.output.shape[-1]} classes but the card lists {len(self.labels)} labels")
        if any(v < 1 for v in self.versions):
            raise ValueError("versions are positive integers")
        return self

    @property
    def latest_version(self) -> int:
        return max(self.versions)


def unknown_fields(part: BaseModel, prefix: str = "") -> list[str]:
    """Dotted paths of the fields a newer writer added that this schema does not define, in `part` and below."""
    found = [f"{prefix}{key}" for key in (part.model_extra or {})]
    for name in type(part).model_fields:
        value = getattr(part, name)
        children = value.items() if isinstance(value, dict) else [("", value)]
        for key, child in children:
            if isinstance(child, BaseModel):
                found += unknown_fields(child, f"{prefix}{name}.{key}." if key != "" else f"{prefix}{name}.")
    return found
