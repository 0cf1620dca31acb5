"""Which folders of the repository are models, and which version of each can be served.

A model folder holds a card; one the service cannot even look into (no permission) is listed too, so that it is
reported as failed rather than skipped. Links are followed only while they stay inside the repository: a folder,
card or model file reached through a link that leaves it is not served, and the log says why (the repository is
trusted data; a link out of it is a way for whoever can write one folder to serve any file on the machine).
A card may name versions whose file is not there (not yet copied, or pruned): the versions present are served
(per the version policy), with a warning. A version folder the card does not name is not served (its sha256 is
needed), with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from modelrepo.card import ModelCard
from modelrepo.layout import CARD_FILE, MODEL_FILE, model_path
from service.runtimes.base import LoadError

log = logging.getLogger(__name__)


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root)


def _is_model_folder(folder: Path) -> bool:
    """A folder with a card, or one that cannot be read (reported as failed when its card is read)."""
    try:
        return (folder / CARD_FILE).exists()
    except PermissionError:
        return True


def model_folders(repo: Path) -> list[str]:
    """Names of the repository's model folders, sorted; links that leave the repository are left out, logged."""
    root = repo.resolve()
    names = []
    for entry in sorted(repo.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if not _inside(entry, root) or not _inside(entry / CARD_FILE, root):
            log.warning(
                "model folder %r is not served: it or its card is a link to %s, outside the repository %s",
                entry.name, (entry / CARD_FILE).resolve(), root,
            )  # fmt: skip
            continue
        if _is_model_folder(entry):
            names.append(entry.name)
        else:
            log.info("folder %r of the model repository has no %s: not a model", entry.name, CARD_FILE)
    return names


def _present(repo: Path, card: ModelCard, version: int) -> bool:
    path = model_path(repo, card.name, version)
    if not path.is_file():
        return False
    if not _inside(path, repo.resolve()):
        log.warning("model %r version %d is not served: its file links to %s, outside the repository",
                    card.name, version, path.resolve())  # fmt: skip
        return False
    return True


@dataclass(frozen=True)
class PresentVersions:
    present: list[int]  # versions of the card whose file is in the repository, newest first
    missing: list[int]  # versions the card names whose file is not there
    unlisted: list[int]  # version folders holding a model file that the card does not name


def _version_folders(repo: Path, name: str) -> list[int]:
    folder = repo / name
    try:
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and (p / MODEL_FILE).is_file())
    except OSError:
        return []


def present_versions(repo: Path, card: ModelCard) -> PresentVersions:
    """Which of the card's versions can be served, and which are named on one side only."""
    newest_first = sorted(card.versions, reverse=True)
    present = [v for v in newest_first if _present(repo, card, v)]
    unlisted = [v for v in _version_folders(repo, card.name) if v not in card.versions]
    return PresentVersions(present, [v for v in newest_first if v not in present], unlisted)


def no_version_error(repo: Path, card: ModelCard) -> LoadError:
    return LoadError(
        f"none of the versions its card names ({sorted(card.versions)}) has a {MODEL_FILE} in the repository",
        detail=f"no file at {[str(model_path(repo, card.name, v)) for v in sorted(card.versions)]}",
    )
