"""The web page (`GET /`) and its assets (`/page/...`): plain HTML, CSS and ES modules shipped in the package.

Each asset is served from a fixed table, so no request can reach another file. The page's Content-Security-Policy
lets the browser load and connect to this server alone: nothing it shows can call out of an air-gapped cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter
from starlette.responses import FileResponse

from service.errors import NotFound

PAGE_DIR: Final = Path(__file__).resolve().parent.parent / "page"
ASSETS: Final = {
    "page.css": "text/css",
    "icon.svg": "image/svg+xml",
    "main.js": "text/javascript",
    "api.js": "text/javascript",
    "format.js": "text/javascript",
    "cards.js": "text/javascript",
    "live.js": "text/javascript",
    "try.js": "text/javascript",
}
# blob: is the uploaded images' thumbnails, made in the browser.
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS: Final = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def page() -> FileResponse:
    return FileResponse(PAGE_DIR / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/page/{asset}")
async def asset(asset: str) -> FileResponse:
    media_type = ASSETS.get(asset)
    if media_type is None:
        raise NotFound(f"no page asset {asset!r}")
    return FileResponse(PAGE_DIR / asset, media_type=media_type, headers=HEADERS)
