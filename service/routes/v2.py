"""Open Inference Protocol v2 REST: health and metadata. Inference is served by `service.fastpath`, ahead of
FastAPI's middleware and routing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.routes.deps import Plane
from service.schemas import READ_ERRORS, Live, ModelMetadata, ModelReady, Ready, ServerMetadata, documents

router = APIRouter(prefix="/v2", tags=["v2"], responses=READ_ERRORS)


@router.get("", **documents(ServerMetadata))
async def server_metadata(plane: Plane) -> dict[str, Any]:
    return plane.server_metadata()


@router.get("/health/live", **documents(Live))
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready", **documents(Ready))
async def ready(plane: Plane) -> dict[str, bool]:
    plane.check_ready()
    return {"ready": True}


@router.get("/models/{name}", **documents(ModelMetadata))
@router.get("/models/{name}/versions/{version}", **documents(ModelMetadata))
async def model_metadata(plane: Plane, name: str, version: str | None = None) -> dict[str, Any]:
    return plane.model_metadata(name, version)


@router.get("/models/{name}/ready", **documents(ModelReady))
@router.get("/models/{name}/versions/{version}/ready", **documents(ModelReady))
async def model_ready(plane: Plane, name: str, version: str | None = None) -> dict[str, Any]:
    plane.model_ready(name, version)
    return {"name": name, "ready": True}
