"""The model registry: one state per model folder (loading, ready, failed or unloaded, and why), the versions of
each that are served, and the student and teacher of the friendly routes (`service.pairing`).

Every change goes through `_sync`, which reads a model's card again, picks the versions its policy wants among
those present, loads and warms the new ones beside the old, and swaps them in with plain assignments on the event
loop: a request either finds the old version or the new, never neither. A version that fails to load is reported
(log, index, its `ready`) and what was served goes on being served. A replaced version finishes what it was given
and is closed once no request holds it (`service.retire`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Literal

from modelrepo.card import ModelCard, VersionPolicy
from modelrepo.layout import CARD_FILE, read_card
from service.discovery import PresentVersions, model_folders, no_version_error, present_versions
from service.errors import NotFound, NotReady, ServiceError
from service.loading import Fingerprint, ServedModel, failure, fingerprint, note_newer_writer, open_served
from service.metrics import Metrics
from service.pairing import Pair, RouteRole, resolve_pair
from service.retire import Retirement
from service.runtimes.base import LoadError
from service.settings import Settings

log = logging.getLogger(__name__)

ModelStatus = Literal["loading", "ready", "failed", "unloaded"]


@dataclass
class VersionFailure:
    reason: str  # for clients
    tried: Fingerprint | None  # what failed: tried again by a poll only once the card entry or file changes


@dataclass
class ModelState:
    """One model folder of the repository: where its loading stands and, once it failed, why. `reason` is what
    clients see (model name and cause, never a path, checksum or file content); the log has the details."""

    name: str
    status: ModelStatus = "loading"
    reason: str = ""
    card: ModelCard | None = None  # once read and checked against its folder
    version: int | None = None  # the version requests without one get: the newest served
    policy: VersionPolicy | None = None
    present: PresentVersions | None = None
    failures: dict[int, VersionFailure] = field(default_factory=dict)
    logged: set[str] = field(default_factory=set)  # warnings said once, not at every poll


class ModelRegistry:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.states: dict[str, ModelState] = {}  # every model folder of the repository, by name
        self.models: dict[str, ServedModel] = {}  # the newest served version of each: looked up on every request
        self.served: dict[str, dict[str, ServedModel]] = {}  # every served version, by model and version
        self.loaded = False  # every model has been tried
        self.pair = resolve_pair({}, settings.student, settings.teacher)
        self._retirement = Retirement(settings.request_timeout_s)
        self._changing = asyncio.Lock()  # one change of the repository at a time (poll, load, unload)

    # -- changes ----------------------------------------------------------------------------------------------
    async def load_all(self) -> None:
        names = self._scan()
        self.states = {name: ModelState(name) for name in names}
        for state in self.states.values():
            await self._sync(state)
        self.loaded = True
        self._resolve_pair()
        unknown = sorted(set(self.settings.model_overrides) - set(names))
        if unknown:
            log.warning("model_overrides name models that are not in %s: %s", self.settings.models_dir, unknown)
        failed = sorted(n for n, s in self.states.items() if s.status == "failed")
        log.info("serving %s; failed: %s", sorted(self.models) or "nothing", failed or "none")

    async def poll(self) -> None:
        """Follow the repository: new models and versions in, removed ones out, changed ones loaded again."""
        async with self._changing:
            names = self._scan()
            for gone in sorted(set(self.states) - set(names)):
                self._take_out(self.states.pop(gone))
                log.warning("model %r: its folder left the repository; no longer served", gone)
            for name in names:
                await self._sync(self.states.setdefault(name, ModelState(name)))
            self._resolve_pair()

    async def load(self, name: str) -> ModelState:
        """Load (or load again) every version of `name` its policy wants, from its card and files as they are
        now; the state says how that went."""
        async with self._changing:
            if name not in self._scan():
                raise NotFound(f"model {name!r} is not in the model repository (no folder {name}/{CARD_FILE})")
            state = self.states.setdefault(name, ModelState(name))
            await self._sync(state, again=True)
            self._resolve_pair()
            return state

    async def unload(self, name: str) -> None:
        async with self._changing:
            state = self.states.get(name)
            if state is None:
                raise NotFound(f"unknown model {name!r}; models in the repository: {sorted(self.states)}")
            self._take_out(state)
            state.status, state.version = "unloaded", None
            state.reason = f"model {name!r} is unloaded (POST /v2/repository/models/{name}/load serves it again)"
            log.info("model %r unloaded", name)
            self._resolve_pair()

    def _scan(self) -> list[str]:
        repo = self.settings.models_dir
        names = model_folders(repo) if repo.is_dir() else []
        if not names and not self.loaded:
            log.error("%s", self.empty_reason())
        return names

    async def _sync(self, state: ModelState, *, again: bool = False) -> None:
        """Serve what `state`'s card and policy want; `again`: open every wanted version anew."""
        try:
            card, candidates, count = self._read(state)
        except Exception as exc:  # whatever one model's card does, the others are still served
            self._card_failed(state, exc)
            return
        state.failures = {v: f for v, f in state.failures.items() if v in candidates}
        current = self.served.get(state.name, {})
        chosen: dict[int, ServedModel] = {}
        for version in candidates:  # newest first: a version that fails leaves its place to the next
            new = await self._version(state, card, version, current.get(str(version)), again=again)
            if new is not None:
                chosen[version] = new
                if len(chosen) == count:
                    break
        self._swap(state, chosen, current)

    def _read(self, state: ModelState) -> tuple[ModelCard, list[int], int]:
        """The card, the versions its policy may serve (newest first) and how many of them to serve."""
        repo = self.settings.models_dir
        card = read_card(repo / state.name / CARD_FILE)
        if card.name != state.name:
            raise LoadError(f"the card in folder {state.name!r} names the model {card.name!r}")
        if card != state.card:
            note_newer_writer(card)
        state.card = card
        state.present = present = present_versions(repo, card)
        state.policy = policy = self.settings.version_policy_for(card.name, card.version_policy)
        if not present.present:
            raise no_version_error(repo, card)
        candidates, count = policy.candidates(present.present)
        if not candidates:
            raise LoadError(f"its version policy {policy} matches none of the versions present {present.present}")
        if present.missing:
            self._once(state, f"model {card.name!r}: no model file for version(s) {present.missing} that its card "
                       f"names; serving from version {', '.join(map(str, candidates))}")  # fmt: skip
        if present.unlisted:
            self._once(state, f"model {card.name!r}: version folder(s) {present.unlisted} hold a model file its "
                       "card does not name (the card gives each version's sha256): not served")  # fmt: skip
        return card, candidates, count

    async def _version(
        self, state: ModelState, card: ModelCard, version: int, old: ServedModel | None, *, again: bool
    ) -> ServedModel | None:
        """The version to serve: `old` while its card entry and file are unchanged, else a fresh load; `old`
        (or None) when that load fails."""
        failed: Exception
        taken: Fingerprint | None
        try:
            taken = fingerprint(self.settings.models_dir, card, version)
        except OSError as exc:
            taken, failed = None, exc
        else:
            if old is not None and old.fingerprint == taken and not again:
                return old
            known = state.failures.get(version)
            if known is not None and known.tried == taken and not again:
                return old  # reported already; tried again once something changes
            try:
                new = await open_served(self.settings, self.metrics, card, version)
            except Exception as exc:
                failed = exc
            else:
                state.failures.pop(version, None)
                return new
        public, detail = failure(failed)
        keeps = f"; still serving version {old.version}" if old is not None else ""
        state.failures[version] = VersionFailure(f"model {card.name!r} version {version}: {public}{keeps}", taken)
        log.error("model %r version %d failed to load: %s%s", card.name, version, detail, keeps)
        return old

    def _swap(self, state: ModelState, chosen: dict[int, ServedModel], current: dict[str, ServedModel]) -> None:
        """Make `chosen` what is served, in one step of the event loop; retire what it replaces."""
        name = state.name
        served = {str(v): chosen[v] for v in sorted(chosen)}
        if served:
            newest = chosen[max(chosen)]
            self.served[name], self.models[name] = served, newest
            state.status, state.version, state.reason = "ready", newest.version, ""
        else:
            self.served.pop(name, None)
            self.models.pop(name, None)
            reasons = "; ".join(f.reason for f in state.failures.values()) or "no version could be loaded"
            state.status, state.version, state.reason = "failed", None, f"model {name!r} failed to load: {reasons}"
        for key, old in current.items():
            if served.get(key) is not old:
                self._retirement.retire(old)
                if key not in served:
                    self.metrics.model_unloaded(old.card, old.version)
        for model in reversed(served.values()):  # the newest last: the card gauges are its
            self.metrics.model_loaded(model.card, model.version)

    def _card_failed(self, state: ModelState, exc: Exception) -> None:
        public, detail = failure(exc)
        served = sorted(int(v) for v in self.served.get(state.name, {}))
        if served:  # keep serving what is loaded
            state.reason = f"model {state.name!r}: {public}; still serving version(s) {served}"
        else:
            state.status, state.reason = "failed", f"model {state.name!r} failed to load: {public}"
        if state.reason not in state.logged:
            state.logged.add(state.reason)
            keeps = f"; still serving version(s) {served}" if served else ""
            log.error("model %r %s: %s%s", state.name, "cannot be read" if served else "failed to load", detail, keeps)

    def _take_out(self, state: ModelState) -> None:
        for old in self.served.pop(state.name, {}).values():
            self._retirement.retire(old)
            self.metrics.model_unloaded(old.card, old.version)
        self.models.pop(state.name, None)

    def _once(self, state: ModelState, message: str) -> None:
        if message not in state.logged:
            state.logged.add(message)
            log.warning("%s", message)

    def _resolve_pair(self) -> None:
        cards = {s.name: s.card for s in self.states.values() if s.card is not None}
        pair = resolve_pair(cards, self.settings.student, self.settings.teacher)
        if pair != self.pair or not self.loaded:
            self.pair = pair
            self._log_routes(pair)

    @staticmethod
    def _log_routes(pair: Pair) -> None:
        for role in ("student", "teacher"):
            choice = pair[role]
            if choice.model is not None:
                log.info("route=%s is answered by %r", role, choice.model)
            elif choice.status == 503:
                log.warning("route=%s (and compare, cascade) will answer 503: %s", role, choice.problem)

    async def close(self) -> None:
        for versions in self.served.values():
            for model in versions.values():
                await model.batcher.stop()
        await self._retirement.close()

    # -- lookups ----------------------------------------------------------------------------------------------
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
        model = self.models.get(name) if version is None else self.served.get(name, {}).get(version)
        if model is None:
            raise self._unavailable(name, version)
        return model

    def _unavailable(self, name: str, version: str | None) -> ServiceError:
        state = self.states.get(name)
        if state is None:
            if not self.loaded:
                return NotReady(f"model {name!r} is loading")
            return NotFound(f"unknown model {name!r}; served models: {sorted(self.models)}")
        if state.status in ("failed", "unloaded"):
            return NotReady(state.reason)
        if state.status == "loading":
            return NotReady(f"model {name!r} is loading")
        failed = state.failures.get(int(version)) if version is not None and version.isdigit() else None
        if failed is not None:
            return NotReady(failed.reason)
        served = sorted(int(v) for v in self.served.get(name, {}))
        return NotFound(f"model {name!r} has no version {version!r} served; served versions: {served}")

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
