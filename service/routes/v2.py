"""Open Inference Protocol v2 REST: health and metadata. Inference is served by `service.fastpath`, ahead of
FastAPI's middleware and routing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.modelconfig import model_config
from service.routes.deps import Plane
from service.schemas import (
    READ_ERRORS,
    Live,
    ModelConfig,
    ModelMetadata,
    ModelReady,
    ModelStatistics,
    Ready,
    ServerMetadata,
    documents,
)
from service.statistics import model_statistics

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


@router.get("/models/stats", **documents(ModelStatistics))  # before /models/{name}, which would take "stats"
async def all_statistics(plane: Plane) -> dict[str, Any]:
    """Triton's statistics extension, for every served model."""
    models = [plane.registry.models[name] for name in sorted(plane.registry.models)]
    return model_statistics(plane.metrics, models)


@router.get("/models/{name}/stats", **documents(ModelStatistics))
@router.get("/models/{name}/versions/{version}/stats", **documents(ModelStatistics))
async def statistics(plane: Plane, name: str, version: str | None = None) -> dict[str, Any]:
    """Triton's statistics extension: counts and nanoseconds from the same measurements as /metrics."""
    return model_statistics(plane.metrics, [plane.registry.get(name, version)])


@router.get("/models/{name}/config", **documents(ModelConfig))
@router.get("/models/{name}/versions/{version}/config", **documents(ModelConfig))
async def config(plane: Plane, name: str, version: str | None = None) -> dict[str, Any]:
    """Triton's model configuration extension: the card and the batching settings in Triton's JSON shape."""
    return model_config(plane.registry.get(name, version), plane.settings)


@router.get("/models/{name}", **documents(ModelMetadata))
@router.get("/models/{name}/versions/{version}", **documents(ModelMetadata))
async def model_metadata(plane: Plane, name: str, version: str | None = None) -> dict[str, Any]:
    return plane.model_metadata(name, version)


@router.get("/models/{name}/ready", **documents(ModelReady))
@router.get("/models/{name}/versions/{version}/ready", **documents(ModelReady))
async def model_ready(plane: Plane, name: str, version: str | None = None) -> dict[str, Any]:
    plane.model_ready(name, version)
    return {"name": name, "ready": True}
