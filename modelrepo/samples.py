"""Sample images next to the models: a handful of real test images and their true labels, for people to try.

Layout::

    <repo>/samples/index.json   `SampleIndex`: every image's file name and true label
    <repo>/samples/<file>.png   the test image's pixels as they are (greyscale or RGB PNG)

The folder holds no `config.json`, so the repository scan never takes it for a model. Training writes it
(`distill_training.samples`); the service lists and serves the files its index names, and no others.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

SAMPLES_DIR: Final = "samples"
INDEX_FILE: Final = "index.json"
# Files are served by name under a URL: lower-case words, digits and dashes, then `.png`.
FILE_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{0,80}\.png$"


class SampleImage(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)  # a reader goes on past fields a newer writer adds

    file: str = Field(pattern=FILE_PATTERN, description="the PNG's name in the samples folder")
    label: str = Field(description="the true class's name")
    class_index: int = Field(ge=0, description="the true class's index in the models' labels")
    test_index: int = Field(ge=0, description="the image's position in the test split it was taken from")


class SampleIndex(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    dataset: str = Field(description="where the images come from: the training data's folder")
    samples: list[SampleImage]


def samples_dir(repo: Path) -> Path:
    return repo / SAMPLES_DIR


def read_index(repo: Path) -> SampleIndex:
    """Parse and validate `<repo>/samples/index.json`; raises pydantic.ValidationError or OSError."""
    return SampleIndex.model_validate_json((samples_dir(repo) / INDEX_FILE).read_bytes())


def write_index(repo: Path, index: SampleIndex) -> Path:
    """Write atomically (temp file + rename), like a card."""
    path = samples_dir(repo) / INDEX_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(index.model_dump_json(indent=2) + "\n")
    tmp.replace(path)
    return path


def file_name(position: int, label: str) -> str:
    """`3-t-shirt-top.png` for the label "T-shirt/top" at position 3: safe in a URL and a folder."""
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:60] or "class"
    return f"{position}-{slug}.png"
