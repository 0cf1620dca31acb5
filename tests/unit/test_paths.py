"""`service.paths.PathsAndHead` around the smallest inline app: HEAD runs GET without its body, a trailing slash
is the path without it, everything else passes through unchanged."""

from __future__ import annotations

from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from service.paths import PathsAndHead


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"method": request.method, "path": request.url.path})


async def stream(request: Request) -> StreamingResponse:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b"one "
        yield b"two"

    return StreamingResponse(chunks(), media_type="text/plain")


def client() -> TestClient:
    routes = [
        Route("/thing", echo, methods=["GET", "POST"]),
        Route("/stream", stream, methods=["GET"]),
        Route("/", lambda request: PlainTextResponse("root"), methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.router.redirect_slashes = False
    return TestClient(PathsAndHead(app))


def test_head_is_get_without_the_body() -> None:
    c = client()
    head = c.head("/thing")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(c.get("/thing").content))
    assert c.get("/thing").json() == {"method": "GET", "path": "/thing"}


def test_head_of_a_streamed_body_sends_none_of_it() -> None:
    head = client().head("/stream")
    assert head.status_code == 200 and head.content == b""


def test_trailing_slashes_are_the_path_without_them() -> None:
    c = client()
    for path in ("/thing/", "/thing//"):
        response = c.post(path, follow_redirects=False)
        assert response.status_code == 200 and response.json() == {"method": "POST", "path": "/thing"}
    assert c.get("/").text == "root"  # the root keeps its slash
    assert c.get("/nothing/").status_code == 404
