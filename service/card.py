"""The model repository contract: the model card schema and the on-disk layout.

Defined once here and imported by `distill_training` to write repositories, so writer and reader cannot drift.

Layout (Triton-like)::

    <repo>/<model-name>/config.json           the model card (ModelCard, below)
    <repo>/<model-name>/<version>/model.onnx  integer version folders; the service serves the highest

The card splits what is stable across versions (the interface: labels, input, output, preprocessing) from what
belongs to one trained artifact (`versions[<v>]`: sha256, size, parameters, accuracy, training config, method).
This module imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CARD_FILE = "config.json"
MODEL_FILE = "model.onnx"
SCHEMA_VERSION: Final = 1

Role = Literal["teacher", "student"]
Method = Literal["teacher", "kd", "none"]
Datatype = Literal["FP32", "FP16", "FP64", "UINT8", "INT8", "INT32", "INT64"]

# Model names become URL path segments and directory names.
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    """One named tensor of the model's signature; -1 marks a dynamic axis (the batch)."""

    name: str
    datatype: Datatype = "FP32"
    shape: list[int] = Field(min_length=1)

    @field_validator("shape")
    @classmethod
    def _dims_valid(cls, shape: list[int]) -> list[int]:
        if any(d == 0 or d < -1 for d in shape):
            raise ValueError(f"dimensions must be positive or -1 (dynamic), got {shape}")
        return shape


class Preprocessing(_Strict):
    """How an image becomes the model's input: resize, greyscale, then x = (pixel * scale - mean) / std.

    The model's input tensor is already normalised; the service applies this to images and to pixel arrays
    sent to the friendly endpoints. Clients of the v2 protocol send the normalised tensor themselves.
    """

    height: int = Field(gt=0)
    width: int = Field(gt=0)
    channels: Literal[1, 3] = 1
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


class VersionRecord(_Strict):
    """One exported artifact: what the file is, how it was made, and how good it measured at export."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(gt=0)
    parameters: int = Field(gt=0)
    test_accuracy: float = Field(ge=0.0, le=1.0)
    method: Method
    config: dict[str, Any] = Field(default_factory=dict)
    created: str = ""


class ModelCard(_Strict):
    """The model card, `<repo>/<name>/config.json`."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str
    role: Role
    teacher: str | None = None
    task: Literal["image-classification"] = "image-classification"
    labels: list[str] = Field(min_length=2)
    input: TensorSpec
    output: TensorSpec
    preprocessing: Preprocessing
    versions: dict[int, VersionRecord] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name_valid(cls, name: str) -> str:
        if not _NAME_PATTERN.match(name):
            raise ValueError(f"model name {name!r} must match {_NAME_PATTERN.pattern}")
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


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def card_path(repo: Path, name: str) -> Path:
    return repo / name / CARD_FILE


def model_path(repo: Path, name: str, version: int) -> Path:
    return repo / name / str(version) / MODEL_FILE


def read_card(path: Path) -> ModelCard:
    """Parse and validate a card; raises pydantic.ValidationError or OSError."""
    return ModelCard.model_validate_json(path.read_bytes())


def write_card(repo: Path, card: ModelCard) -> Path:
    """Write atomically (temp file + rename) so a reader never sees half a card."""
    path = card_path(repo, card.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(card.model_dump_json(indent=2) + "\n")
    tmp.replace(path)
    return path


def list_model_dirs(repo: Path) -> list[Path]:
    """Model folders of a repository: those holding a card, sorted by name."""
    return sorted(p.parent for p in repo.glob(f"*/{CARD_FILE}"))
