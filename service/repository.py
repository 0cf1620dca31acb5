"""The model registry: scans the repository, loads and warms each model once, keeps the failures' reasons."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from modelrepo.card import SCHEMA_VERSION, ModelCard, unknown_fields
from modelrepo.layout import CARD_FILE, list_model_dirs, model_path, read_card, sha256_file
from service.batcher import DynamicBatcher
from service.errors import NotFound, NotReady
from service.metrics import Metrics
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

    @property
    def name(self) -> str:
        return self.card.name


def _open_version(repo: Path, card: ModelCard, version: int, threads: ThreadConfig) -> Runtime:
    """The runtime of the card's platform on that version's file, once the file is the one the card names."""
    runtime = RUNTIMES.get(card.platform)
    if runtime is None:
        raise LoadError(f"platform {card.platform!r} has no runtime in this service; it runs {sorted(RUNTIMES)}")
    path = model_path(repo, card.name, version)
    if not path.is_file():
        raise LoadError(f"{path} does not exist")
    expected = card.versions[version].sha256
    digest = sha256_file(path)
    if digest != expected:
        raise LoadError(f"sha256 of {path} is {digest}, the card says {expected}: refusing to serve it")
    return runtime.load(path, card, threads)


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
        self.models: dict[str, ServedModel] = {}
        self.failures: dict[str, str] = {}
        self.pending: set[str] = set()
        self.loaded = False  # every model has been tried

    async def load_all(self) -> None:
        repo = self.settings.models_dir
        dirs = list_model_dirs(repo) if repo.is_dir() else []
        if not dirs:
            log.error("%s", self.empty_reason())
        self.pending = {d.name for d in dirs}
        for d in dirs:
            reason = await self._try_load(d.name)
            if reason is not None:
                log.error("%s", reason)
                self.failures[d.name] = reason
            self.pending.discard(d.name)
        self.loaded = True
        unknown = sorted(set(self.settings.model_overrides) - {d.name for d in dirs})
        if unknown:
            log.warning("model_overrides name models that are not in %s: %s", repo, unknown)
        log.info("serving %s; failed: %s", sorted(self.models) or "nothing", sorted(self.failures) or "none")

    async def _try_load(self, name: str) -> str | None:
        """Load one model; return why it cannot be served, or None."""
        try:
            await self._load(name)
        except (LoadError, ValidationError, OSError) as exc:
            return f"model {name!r} failed to load: {exc}"
        except Exception as exc:  # e.g. onnxruntime failing on the warm-up batch: never stop the others
            return f"model {name!r} failed to load or warm up: {type(exc).__name__}: {exc}"
        return None

    async def _load(self, dir_name: str) -> None:
        repo = self.settings.models_dir
        card = read_card(repo / dir_name / CARD_FILE)
        if card.name != dir_name:
            raise LoadError(f"the card in folder {dir_name!r} names the model {card.name!r}")
        _note_newer_writer(card)
        version = card.latest_version
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
        batcher = DynamicBatcher(
            card.name, run, config, self.metrics.for_model(card.name, card.role),
            inline=inline, retry_after_s=self.settings.retry_after_s,
        )  # fmt: skip
        batcher.start()
        self.models[card.name] = ServedModel(card, version, runtime, batcher)
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

    def known(self, name: str) -> bool:
        return name in self.models or name in self.failures or name in self.pending

    def get(self, name: str, version: str | None = None) -> ServedModel:
        model = self.models.get(name)
        if model is None:
            if name in self.failures:
                raise NotReady(self.failures[name])
            if name in self.pending or not self.loaded:
                raise NotReady(f"model {name!r} is loading")
            raise NotFound(f"unknown model {name!r}; served models: {sorted(self.models)}")
        if version is not None and version != str(model.version):
            raise NotFound(f"model {name!r} has no version {version!r} served; served version: {model.version}")
        return model

    def by_role(self, role: str) -> ServedModel:
        """The model answering `route=student|teacher`: the setting, else the card relations."""
        chosen = self.settings.student if role == "student" else self.settings.teacher
        if chosen is not None:
            return self.get(chosen)
        if not self.loaded:
            raise NotReady("models are loading")
        if role == "teacher":
            student = self.models.get(self.settings.student or "")
            students = [student] if student else self._with_role("student")
            teacher = next((s.card.teacher for s in students if s.card.teacher in self.models), None)
            if teacher is not None:
                return self.models[teacher]
        candidates = self._with_role(role)
        if not candidates:
            raise NotFound(f"no {role} model is served; served models: {sorted(self.models)}")
        return candidates[0]

    def _with_role(self, role: str) -> list[ServedModel]:
        return [self.models[n] for n in sorted(self.models) if self.models[n].card.role == role]
