"""One model version from its folder to a `ServedModel`: the file checked against its card's sha256, opened by
the runtime of the card's platform, warmed, and given its batcher. Also why a load failed, in words for clients
(no path, checksum or file content) and in detail for the log."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from modelrepo.card import SCHEMA_VERSION, ModelCard, unknown_fields
from modelrepo.layout import CARD_FILE, model_path, sha256_file
from service.batcher import DynamicBatcher
from service.declaration import ModelSignature
from service.metrics import Metrics, ModelMetrics
from service.runtimes import RUNTIMES
from service.runtimes.base import LoadError, Runtime
from service.settings import Settings, ThreadConfig

log = logging.getLogger(__name__)

Fingerprint = tuple[str, int, int, int]  # the card's sha256 of the version; the file's mtime, size and inode


@dataclass(frozen=True)
class ServedModel:
    card: ModelCard
    version: int
    runtime: Runtime
    batcher: DynamicBatcher
    metrics: ModelMetrics
    signature: ModelSignature  # what a v2 request is checked against before its data is read
    fingerprint: Fingerprint  # what was loaded: a change of card entry or file makes the poll load it again

    @property
    def name(self) -> str:
        return self.card.name


def fingerprint(repo: Path, card: ModelCard, version: int) -> Fingerprint:
    """Cheap to take on every poll: the file is hashed only when this changes."""
    stat = os.stat(model_path(repo, card.name, version))
    return card.versions[version].sha256, stat.st_mtime_ns, stat.st_size, stat.st_ino


def _open_version(repo: Path, card: ModelCard, version: int, threads: ThreadConfig) -> Runtime:
    """The runtime of the card's platform on that version's file, once the file is the one the card names."""
    runtime = RUNTIMES.get(card.platform)
    if runtime is None:
        raise LoadError(f"platform {card.platform!r} has no runtime in this service; it runs {sorted(RUNTIMES)}")
    path = model_path(repo, card.name, version)
    expected = card.versions[version].sha256
    digest = sha256_file(path)
    if digest != expected:
        raise LoadError(
            f"the sha256 of version {version}'s {path.name} does not match its card: refusing to serve it",
            detail=f"sha256 of {path} is {digest}, the card says {expected}: refusing to serve it",
        )
    return runtime.load(path, card, threads)


async def open_served(settings: Settings, metrics: Metrics, card: ModelCard, version: int) -> ServedModel:
    """Load, check and warm one version, and start its batcher; LoadError (or any other error) when it cannot."""
    repo = settings.models_dir
    taken = fingerprint(repo, card, version)
    threads = settings.threads_for(card.name)
    config = settings.batching_for(card.name)

    async def load_warm() -> tuple[Runtime, float, float]:
        runtime = await asyncio.to_thread(_open_version, repo, card, version, threads)
        return runtime, *await asyncio.to_thread(runtime.warmup, settings.warmup_runs, config.max_batch_size)

    runtime, single_s, batch_s = await load_warm()
    inline = batch_s * 1e6 < settings.inline_run_max_us  # a full batch may block the event loop this long
    if inline and (on_loop := settings.threads_for(card.name, inline=True)) != threads:
        threads = on_loop
        runtime, single_s, batch_s = await load_warm()  # small, since it runs inline: milliseconds
    run = metrics.cpu_counted(runtime.run, card.name, card.role, inline=inline)
    model_metrics = metrics.for_model(card.name, card.role)
    batcher = DynamicBatcher(card.name, run, config, model_metrics, inline=inline, retry_after_s=settings.retry_after_s)
    batcher.start()
    signature = ModelSignature(card.name, card.input, card.output.name, settings.max_request_rows)
    log.info(
        "loaded %s v%d (%s, %s, %d intra-op threads): warm %.0f us for 1 row, %.0f us for %d, runs %s",
        card.name, version, card.role, runtime.platform, threads.intra_op_threads, single_s * 1e6,
        batch_s * 1e6, config.max_batch_size, "inline" if inline else "in a worker thread",
    )  # fmt: skip
    return ServedModel(card, version, runtime, batcher, model_metrics, signature, taken)


def _card_problems(exc: ValidationError) -> str:
    """What is wrong with a card, by field, without the values (a card's bytes stay in the log)."""
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'card'}: {e['msg']}" for e in exc.errors())
    return f"its {CARD_FILE} is not a valid model card: {problems}"


def failure(exc: Exception) -> tuple[str, str]:
    """(for clients, for the log) of why a model or version could not be loaded."""
    if isinstance(exc, LoadError):
        return str(exc), exc.detail
    if isinstance(exc, ValidationError):
        return _card_problems(exc), str(exc)
    if isinstance(exc, OSError):
        return f"cannot read its files: {exc.strerror or type(exc).__name__}", str(exc)
    # e.g. onnxruntime failing on the warm-up batch: never stop the others
    return f"could not load or warm up: {type(exc).__name__} (the server log says more)", f"{type(exc).__name__}: {exc}"


def note_newer_writer(card: ModelCard) -> None:
    """Say, at load, what a newer training run wrote that this service reads past."""
    unknown = unknown_fields(card)
    if unknown:
        log.warning("model %r: its card has fields this service does not know, ignored: %s", card.name, unknown)
    if card.schema_version > SCHEMA_VERSION:
        log.warning(
            "model %r: its card has schema version %d, this service knows up to %d; reading what it knows",
            card.name, card.schema_version, SCHEMA_VERSION,
        )  # fmt: skip
