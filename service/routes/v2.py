"""Open Inference Protocol v2 REST. The infer routes are plain Starlette routes: no body or dependency
machinery on the hot path; the others are ordinary FastAPI routes."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response
from starlette.routing import Route

from service.codec import HEADER_LENGTH
from service.dataplane import DataPlane
from service.routes.bodies import read_body


def get_dataplane(request: Request) -> DataPlane:
    plane: DataPlane = request.app.state.dataplane
    return plane


Plane = Annotated[DataPlane, Depends(get_dataplane)]
router = APIRouter(prefix="/v2", tags=["v2"])


@router.get("")
async def server_metadata(plane: Plane) -> dict[str, Any]:
    return plane.server_metadata()


@router.get("/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready")
async def ready(plane: Plane) -> dict[str, bool]:
    plane.check_ready()
    return {"ready": True}


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata(plane: Plane, name: str, version: str | None = None) -> dict[str, Any]:
    return plane.model_metadata(name, version)


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
async def model_ready(plane: Plane, name: str, version: str | None = None) -> dict[str, Any]:
    plane.model_ready(name, version)
    return {"name": name, "ready": True}


async def infer(request: Request) -> Response:
    started = time.perf_counter()
    plane = get_dataplane(request)
    name: str = request.path_params["name"]
    try:
        body = await read_body(request, plane.settings.max_body_bytes)
        content, header_length = await plane.infer(
            name, request.path_params.get("version"), body, request.headers.get(HEADER_LENGTH)
        )
    finally:
        plane.observe_request("infer", name if plane.registry.known(name) else "unknown", started)
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(
        content, media_type="application/octet-stream", headers={"Inference-Header-Content-Length": str(header_length)}
    )


infer_routes = [
    Route("/v2/models/{name}/infer", infer, methods=["POST"]),
    Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
]
