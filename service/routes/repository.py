"""Triton's model repository extension: the index (read-only, in every mode), load and unload (`model_control`
explicit, with the control token). The data plane's `RepositoryControl` does the work."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service.body import read_body
from service.control import CONTROL_BODY_BYTES
from service.routes.deps import Plane
from service.schemas import CONTROL_ERRORS, INDEX_ERRORS, ControlAnswer, RepositoryEntry, documents

router = APIRouter(prefix="/v2/repository", tags=["repository"])


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    return await read_body(request.receive, CONTROL_BODY_BYTES, None if declared is None else declared.encode())


@router.post("/index", **documents(RepositoryEntry, many=True, errors=INDEX_ERRORS))
async def index(request: Request, plane: Plane) -> list[dict[str, str]]:
    """Every model and version of the repository with its state (READY, LOADING, UNAVAILABLE) and why; body
    `{"ready": true}` lists the READY ones only."""
    return plane.control.index(await _body(request))


@router.post("/models/{name}/load", **documents(ControlAnswer, errors=CONTROL_ERRORS))
async def load(request: Request, plane: Plane, name: str) -> dict[str, Any]:
    """Load (or load again) a model from its card and files as they are now, each file checked against its
    sha256; explicit mode only, with the control token."""
    plane.control.authorize(request.headers.get("authorization"))
    return await plane.control.load(name, await _body(request))


@router.post("/models/{name}/unload", **documents(ControlAnswer, errors=CONTROL_ERRORS))
async def unload(request: Request, plane: Plane, name: str) -> dict[str, Any]:
    """Stop serving a model (its requests in flight are answered first); explicit mode only, with the token."""
    plane.control.authorize(request.headers.get("authorization"))
    return await plane.control.unload(name, await _body(request))
