"""The sample images training writes next to the models (`modelrepo.samples`): listed with their true labels, and
served by name. Only files the index names are served, so no request reaches any other file."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modelrepo.samples import INDEX_FILE, SampleIndex, read_index, samples_dir
from service.errors import NotFound

log = logging.getLogger(__name__)
URL_PREFIX = "/v1/samples/"
LISTED = {"file", "label", "class_index", "test_index"}  # a newer writer's extra fields stay out of the answer


def _index(repo: Path) -> tuple[SampleIndex | None, str | None]:
    """The index, or None and why there is none."""
    where = samples_dir(repo) / INDEX_FILE
    named = f"{where.parent.name}/{where.name}"  # relative to the repository: clients never see server paths
    if not where.is_file():
        return None, f"no sample images: the model repository has no {named} (the training pipeline writes it)"
    try:
        return read_index(repo), None
    except (OSError, ValidationError) as exc:
        log.warning("cannot read %s: %s", where, exc)
        return None, f"no sample images: the model repository's {named} is not a valid sample index"


def list_samples(repo: Path) -> dict[str, Any]:
    index, note = _index(repo)
    samples = [] if index is None else [s for s in index.samples if (samples_dir(repo) / s.file).is_file()]
    return {
        "dataset": None if index is None else index.dataset,
        "samples": [s.model_dump(include=LISTED) | {"url": URL_PREFIX + s.file} for s in samples],
        "note": note,
    }


def sample_path(repo: Path, file: str) -> Path:
    index, note = _index(repo)
    listed = index is not None and any(s.file == file for s in index.samples)
    path = samples_dir(repo) / file
    if not listed or not path.is_file():
        raise NotFound(note or f"no sample image {file!r}; GET /v1/samples lists them")
    return path
