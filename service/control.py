"""Repository control over HTTP, as Triton's model-control modes (`model_control`): the index of every model and
version with its state, read-only in every mode; load and unload only in `explicit` mode, with the bearer token
of `control_token` (compared in constant time) unless the operator opted out of it.

Load reads the card again and checks every wanted version's file against its sha256 before swapping the fresh
sessions in (`ModelRegistry.load`); a version that fails is reported and what was served goes on being served.
"""

from __future__ import annotations

import hmac
from typing import Any

from service.errors import BadRequest, Forbidden, Unauthorized
from service.jsondoc import json_object, members
from service.repository import ModelRegistry, ModelState
from service.settings import Settings

CONTROL_BODY_BYTES = 64 << 10  # an index, load or unload body holds a few parameters


def _off(mode: str) -> Forbidden:
    why = {
        "none": "the service serves what the repository held at start",
        "poll": "the service follows the repository by polling it (change its files instead)",
    }[mode]
    return Forbidden(
        f"model control is {mode!r}: {why}, and loading or unloading over HTTP is off. Set "
        "DISTILL_MODEL_CONTROL=explicit and DISTILL_CONTROL_TOKEN to enable it"
    )


def _version_entry(state: ModelState, version: int, served: dict[str, Any]) -> dict[str, str]:
    entry = {"name": state.name, "version": str(version)}
    failure = state.failures.get(version)
    if str(version) in served:
        return {**entry, "state": "READY", "reason": state.reason}  # a reason: the card broke, this still serves
    if failure is not None:
        return {**entry, "state": "UNAVAILABLE", "reason": failure.reason}
    if state.status == "loading":
        return {**entry, "state": "LOADING", "reason": ""}
    if state.status != "ready":
        return {**entry, "state": "UNAVAILABLE", "reason": state.reason}
    if state.present is not None and version in state.present.missing:
        return {**entry, "state": "UNAVAILABLE", "reason": "its model file is not in the repository"}
    return {**entry, "state": "UNAVAILABLE", "reason": f"not served: its version policy is {state.policy}"}


class RepositoryControl:
    def __init__(self, settings: Settings, registry: ModelRegistry) -> None:
        self.settings = settings
        self.registry = registry

    def index(self, body: bytes) -> list[dict[str, str]]:
        """Every model and version of the repository, with its state and why (`{"ready": true}`: READY only)."""
        ready_only = False
        if body.strip():
            ready = json_object(body, "the index request").get("ready", False)
            if not isinstance(ready, bool):
                raise BadRequest(f"'ready' must be true or false, got {ready!r}")
            ready_only = ready
        entries = []
        for name in sorted(self.registry.states):
            state = self.registry.states[name]
            versions = sorted({*(state.card.versions if state.card else ()), *state.failures})
            if not versions:
                status = "LOADING" if state.status == "loading" else "UNAVAILABLE"
                entries.append({"name": name, "state": status, "reason": state.reason})
            served = self.registry.served.get(name, {})
            entries += [_version_entry(state, v, served) for v in versions]
        return [e for e in entries if e["state"] == "READY"] if ready_only else entries

    def authorize(self, authorization: str | None) -> None:
        """Load and unload are allowed: explicit mode, and the token when one is set."""
        mode = self.settings.model_control
        if mode != "explicit":
            raise _off(mode)
        token = self.settings.control_token
        if token is None:
            return  # control_allow_unauthenticated
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.get_secret_value().encode()
        ):
            raise Unauthorized("loading and unloading models needs the control token: Authorization: Bearer <token>")

    async def load(self, name: str, body: bytes) -> dict[str, Any]:
        parameters = self._parameters(body, "load")
        if parameters:
            raise BadRequest(
                f"load parameters {sorted(parameters)} are not supported: this service loads a model from its "
                "repository only (its card and files), never from a config or files in the request"
            )
        state = await self.registry.load(name)
        if state.status != "ready" or state.failures:
            problems = "; ".join(f.reason for f in state.failures.values()) or state.reason
            raise BadRequest(f"failed to load {name!r}: {problems}")
        return {"name": name, "versions": list(self.registry.served[name])}

    async def unload(self, name: str, body: bytes) -> dict[str, Any]:
        self._parameters(body, "unload")  # unload_dependents: a model here has none
        await self.registry.unload(name)
        return {"name": name, "state": "UNAVAILABLE"}

    @staticmethod
    def _parameters(body: bytes, what: str) -> dict[str, Any]:
        if not body.strip():
            return {}
        params = members(json_object(body, f"the {what} request").get("parameters"), "'parameters'")
        return {k: v for k, v in params.items() if k != "unload_dependents"}
