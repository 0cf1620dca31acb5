"""Up-to-date checks: every step writes `meta.json` with a key hashed from everything its output depends on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, cast

META = "meta.json"


def digest(obj: Any) -> str:
    """sha256 of a JSON-able object (keys sorted), the key of an artifact built from it."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def read_meta(directory: Path) -> dict[str, Any]:
    try:
        return cast(dict[str, Any], json.loads((directory / META).read_text()))
    except (OSError, ValueError):
        return {}


def write_meta(directory: Path, meta: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (META + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(directory / META)
