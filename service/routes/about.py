"""Read-only views for people and the web page: the served models' cards, the sample images, live figures."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import FileResponse

from service import cards, live, samples
from service.routes.deps import Plane
from service.schemas import READ_ERRORS, ModelsOverview, SampleList, Stats, documents

router = APIRouter(prefix="/v1", tags=["about"], responses=READ_ERRORS)


@router.get("/models", **documents(ModelsOverview))
async def models(plane: Plane) -> dict[str, Any]:
    """The served models' cards in plain words, the student/teacher pair the routes use, and what failed."""
    return cards.overview(plane.registry, plane.settings.cascade_threshold)


@router.get("/samples", **documents(SampleList))
async def sample_list(plane: Plane) -> dict[str, Any]:
    """The real test images training wrote next to the models (`<models_dir>/samples/`), with true labels."""
    return samples.list_samples(plane.settings.models_dir)


@router.get(
    "/samples/{file}",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}, "description": "the PNG"}},
)
async def sample_file(plane: Plane, file: str) -> FileResponse:
    """One sample image, by the name `/v1/samples` lists."""
    return FileResponse(samples.sample_path(plane.settings.models_dir, file), media_type="image/png")


@router.get("/stats", **documents(Stats))
async def stats(plane: Plane) -> dict[str, Any]:
    """The metrics as JSON, cumulative since start (as `/metrics`): rates come from two snapshots' difference."""
    return live.snapshot(plane.metrics)
