"""What routes depend on, as `Annotated` aliases: a route imports these, never a sibling route."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.dataplane import DataPlane


def get_dataplane(request: Request) -> DataPlane:
    plane: DataPlane = request.app.state.dataplane
    return plane


Plane = Annotated[DataPlane, Depends(get_dataplane)]
