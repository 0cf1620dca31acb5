"""Friendly endpoints for people and curl: classify images or pixel arrays, compare two models."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse

from service.classification import Route
from service.routes.bodies import Images, read_pixel_batch
from service.routes.deps import Plane
from service.schemas import INFER_ERRORS, Classified, Compared, documents

router = APIRouter(prefix="/v1", tags=["friendly"], responses=INFER_ERRORS)

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "inputs": {"type": "array", "description": "rows of raw pixels 0..255: flat or shaped"},
                        "labels": {"type": "array", "items": {"type": "integer"}, "description": "true classes"},
                    },
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "labels": {"type": "string", "description": "comma-separated true classes"},
                    },
                }
            },
        },
    }
}


@router.post("/classify", openapi_extra=_BODY_DOC, **documents(Classified))
async def classify(
    request: Request,
    plane: Plane,
    route: Annotated[Route | None, Query(description="student (default), teacher or cascade")] = None,
    model: Annotated[str | None, Query(description="a served model by name, instead of a route")] = None,
    threshold: Annotated[float | None, Query(ge=0.0, le=1.0, description="cascade threshold")] = None,
) -> dict[str, Any] | JSONResponse:
    """Classify PNG/JPEG uploads or pixel arrays with a model or a route; labels count online accuracy."""
    started = time.perf_counter()
    try:
        plan = plane.classifier.plan_classify(model, route, threshold)
        batch = await read_pixel_batch(request, plane.settings, Images(plane.decoder, plan.preprocessings))
        answer, shadowed = await plane.classifier.classify(batch, plan)
    finally:
        plane.metrics.observe_request("classify", plane.classifier.label_for(model, route), started)
    if shadowed is None:
        return answer
    return JSONResponse(
        answer, background=BackgroundTask(plane.shadow.offer_after_response, shadowed)
    )  # run once it is sent


@router.post("/compare", openapi_extra=_BODY_DOC, **documents(Compared))
async def compare(
    request: Request,
    plane: Plane,
    a: Annotated[str | None, Query(description="a served model by name (default: the student)")] = None,
    b: Annotated[str | None, Query(description="the model to compare it with (default: the teacher)")] = None,
) -> dict[str, Any]:
    """Two models on the same input (the student and the teacher by default): both answers, both compute times,
    the speedup of `a` over `b` and their agreement; `student` and `teacher` name the sides of such a pair."""
    started = time.perf_counter()
    try:
        plan = plane.classifier.plan_compare(a, b)
        batch = await read_pixel_batch(request, plane.settings, Images(plane.decoder, plan.preprocessings))
        return await plane.classifier.compare(batch, plan)
    finally:
        plane.metrics.observe_request("compare", "compare", started)
