"""Where a repository keeps each thing, reading and writing cards, and the checksum that ties a file to its card."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final

from modelrepo.card import ModelCard, unknown_fields

CARD_FILE: Final = "config.json"
MODEL_FILE: Final = "model.onnx"


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
    """Write atomically (temp file + rename) so a reader never sees half a card. A writer knows the whole
    schema, so a field it does not define is a mistake here, not a newer writer's addition."""
    extra = unknown_fields(card)
    if extra:
        raise ValueError(f"card {card.name!r} has fields the schema does not define: {extra}")
    path = card_path(repo, card.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(card.model_dump_json(indent=2) + "\n")
    tmp.replace(path)
    return path


def list_model_dirs(repo: Path) -> list[Path]:
    """Model folders of a repository: those holding a card, sorted by name."""
    return sorted(p.parent for p in repo.glob(f"*/{CARD_FILE}"))
