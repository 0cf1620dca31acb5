"""The model registry: one state per model folder (loading, ready or failed, and why), each model loaded and warmed
once; the student and teacher of the friendly routes (`service.pairing`)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from modelrepo.card import SCHEMA_VERSION, ModelCard, unknown_fields
from modelrepo.layout import CARD_FILE, model_path, read_card, sha256_file
from service.batcher import DynamicBatcher
from service.declaration import ModelSignature
from service.discovery import model_folders, servable_version
from service.errors import NotFound, NotReady
from service.metrics import Metrics, ModelMetrics
from service.pairing import RouteRole, resolve_pair
from service.runtimes import RUNTIMES
from service.runtimes.base import LoadError, Runtime
from service.settings import Settings, ThreadConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    card: ModelCard
    version: int
    runtime: Runtime
    batcher: DynamicBatcher
    metrics: ModelMetrics
    signature: ModelSignature  # what a v2 request is checked against before its data is read

    @property
    def name(self) -> str:
        return self.card.name


ModelStatus = Literal["loading", "ready", "failed"]


@dataclass
class ModelState:
    """One model folder of the repository: where its loading stands and, once it failed, why. `reason` is what
    clients see (model name and cause, never a path, checksum or file content); the log has the details."""

    name: str
    status: ModelStatus = "loading"
    reason: str = ""
    card: ModelCard | None = None  # once read and checked against its folder
    version: int | None = None  # the version served, once chosen


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


def _card_problems(exc: ValidationError) -> str:
    """What is wrong with a card, by field, without the values (a card's bytes stay in the log)."""
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'card'}: {e['msg']}" for e in exc.errors())
    return f"its {CARD_FILE} is not a valid model card: {problems}"


def _failure(exc: Exception) -> tuple[str, str]:
    """(for clients, for the log) of why a model could not be loaded."""
    if isinstance(exc, LoadError):
        return str(exc), exc.detail
    if isinstance(exc, ValidationError):
        return _card_problems(exc), str(exc)
    if isinstance(exc, OSError):
        return f"cannot read its files: {exc.strerror or type(exc).__name__}", str(exc)
    # e.g. onnxruntime failing on the warm-up batch: never stop the others
    return f"could not load or warm up: {type(exc).__name__} (the server log says more)", f"{type(exc).__name__}: {exc}"


def _note_newer_writer(card: ModelCard) -> None:
    """Say once, at load, what a newer training run wrote that this service reads past."""
    unknown = unknown_fields(card)
    if unknown:
        log.warning("model %r: its card has fields this service does not know, ignored: %s", card.name, unknown)
    if card.schema_version > SCHEMA_VERSION:
        log.warning(
            "model %r: its card has schema version %d, this service knows up to %d; reading what it knows",
            card.name, card.schema_version, SCHEMA_VERSION,
        )  # fmt: skip


class ModelRegistry:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.states: dict[str, ModelState] = {}  # every model folder of the repository, by name
        self.models: dict[str, ServedModel] = {}  # the ready ones: looked up on every request
        self.loaded = False  # every model has been tried
        self.pair = resolve_pair({}, settings.student, settings.teacher)

    async def load_all(self) -> None:
        repo = self.settings.models_dir
        names = model_folders(repo) if repo.is_dir() else []
        if not names:
            log.error("%s", self.empty_reason())
        self.states = {name: ModelState(name) for name in names}
        for state in self.states.values():
            await self._try_load(state)
        self.loaded = True
        cards = {s.name: s.card for s in self.states.values() if s.card is not None}
        self.pair = resolve_pair(cards, self.settings.student, self.settings.teacher)
        unknown = sorted(set(self.settings.model_overrides) - set(names))
        if unknown:
            log.warning("model_overrides name models that are not in %s: %s", repo, unknown)
        failed = sorted(n for n, s in self.states.items() if s.status == "failed")
        log.info("serving %s; failed: %s", sorted(self.models) or "nothing", failed or "none")
        self._log_routes()

    def _log_routes(self) -> None:
        for role in ("student", "teacher"):
            choice = self.pair[role]
            if choice.model is not None:
                log.info("route=%s is answered by %r", role, choice.model)
            elif choice.status == 503:
                log.warning("route=%s (and compare, cascade) will answer 503: %s", role, choice.problem)

    async def _try_load(self, state: ModelState) -> None:
        try:
            await self._load(state)
        except Exception as exc:  # whatever one model does, the others are still loaded
            public, detail = _failure(exc)
            state.status, state.reason = "failed", f"model {state.name!r} failed to load: {public}"
            log.error("model %r failed to load: %s", state.name, detail)

    async def _load(self, state: ModelState) -> None:
        repo = self.settings.models_dir
        card = read_card(repo / state.name / CARD_FILE)
        if card.name != state.name:
            raise LoadError(f"the card in folder {state.name!r} names the model {card.name!r}")
        state.card = card
        _note_newer_writer(card)
        chosen = servable_version(repo, card)
        if chosen.missing:
            log.warning("model %r: no model file for version(s) %s that its card names; serving version %d",
                        card.name, chosen.missing, chosen.version)  # fmt: skip
        version = state.version = chosen.version
        threads = self.settings.threads_for(card.name)
        config = self.settings.batching_for(card.name)

        async def load_warm() -> tuple[Runtime, float, float]:
            runtime = await asyncio.to_thread(_open_version, repo, card, version, threads)
            return runtime, *await asyncio.to_thread(runtime.warmup, self.settings.warmup_runs, config.max_batch_size)

        runtime, single_s, batch_s = await load_warm()
        inline = batch_s * 1e6 < self.settings.inline_run_max_us  # a full batch may block the event loop this long
        if inline and (on_loop := self.settings.threads_for(card.name, inline=True)) != threads:
            threads = on_loop
            runtime, single_s, batch_s = await load_warm()  # small, since it runs inline: milliseconds
        run = self.metrics.cpu_counted(runtime.run, card.name, card.role, inline=inline)
        metrics = self.metrics.for_model(card.name, card.role)
        batcher = DynamicBatcher(
            card.name, run, config, metrics, inline=inline, retry_after_s=self.settings.retry_after_s
        )
        batcher.start()
        signature = ModelSignature(card.name, card.input, card.output.name, self.settings.max_request_rows)
        self.models[card.name] = ServedModel(card, version, runtime, batcher, metrics, signature)
        state.status = "ready"
        self.metrics.model_loaded(card, version)
        log.info(
            "loaded %s v%d (%s, %s, %d intra-op threads): warm %.0f us for 1 row, %.0f us for %d, runs %s",
            card.name, version, card.role, runtime.platform, threads.intra_op_threads, single_s * 1e6,
            batch_s * 1e6, config.max_batch_size,
            "inline" if inline else "in a worker thread",
        )  # fmt: skip

    async def close(self) -> None:
        for model in self.models.values():
            await model.batcher.stop()

    def empty_reason(self) -> str:
        repo = self.settings.models_dir
        layout = f"expected <name>/{CARD_FILE} and <name>/<version>/model.onnx"
        if not repo.is_dir():
            return f"the model repository {repo} does not exist ({layout}): nothing to serve"
        return f"the model repository {repo} holds no models ({layout}): nothing to serve"

    @property
    def ready(self) -> bool:
        return self.loaded and bool(self.models)

    def with_status(self, status: ModelStatus) -> list[ModelState]:
        return [s for s in self.states.values() if s.status == status]

    def known(self, name: str) -> bool:
        return name in self.states

    def get(self, name: str, version: str | None = None) -> ServedModel:
        model = self.models.get(name)
        if model is None:
            state = self.states.get(name)
            if state is not None and state.status == "failed":
                raise NotReady(state.reason)
            if state is not None or not self.loaded:
                raise NotReady(f"model {name!r} is loading")
            raise NotFound(f"unknown model {name!r}; served models: {sorted(self.models)}")
        if version is not None and version != str(model.version):
            raise NotFound(f"model {name!r} has no version {version!r} served; served version: {model.version}")
        return model

    def by_role(self, role: RouteRole) -> ServedModel:
        """The model answering `route=student|teacher` (`service.pairing`); 503 naming it when it is down."""
        if not self.loaded:
            raise NotReady("models are loading")
        choice = self.pair[role]
        if choice.model is None:
            raise (NotReady if choice.status == 503 else NotFound)(f"route={role}: {choice.problem}")
        if choice.model not in self.states:
            raise NotReady(f"route={role}: its model {choice.model!r} is not in the model repository")
        try:
            return self.get(choice.model)
        except NotReady as exc:
            raise NotReady(f"route={role}: {exc.message}") from None
