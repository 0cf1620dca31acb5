"""What a web page can make a browser do: requests using the service from another origin are refused (403) unless
allowed (then with CORS headers), the server's own pages and non-browser clients are not; a trailing slash is
answered as the path without it, never a redirect echoing the Host header; the docs load nothing from a CDN."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from servers import wait_ready

from service.app import create_app
from service.settings import Settings

INFER = "/v2/models/tiny-student/infer"
TENSOR = {"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": [0.0] * 784}
BODY = json.dumps({"inputs": [TENSOR]})
EVIL = "https://evil.example"


def post_infer(client: TestClient, **headers: str) -> tuple[int, dict[str, str], str]:
    response = client.post(INFER, content=BODY, headers={"content-type": "text/plain", **headers})
    return response.status_code, dict(response.headers), response.text


def post_classify(client: TestClient, **headers: str) -> int:
    return client.post("/v1/classify", json={"inputs": [[0] * 784]}, headers=headers).status_code


@pytest.mark.parametrize("origin", [EVIL, "null", "http://testserver.evil.example", "http://testserver:8001"])
def test_foreign_origins_cannot_use_the_service(client: TestClient, origin: str) -> None:
    status, _, text = post_infer(client, origin=origin)
    assert status == 403 and "DISTILL_ALLOWED_ORIGINS" in text, text
    assert post_classify(client, origin=origin) == 403
    files = {"files": ("a.png", b"\x89PNG", "image/png")}
    assert client.post("/v1/compare", files=files, headers={"origin": origin}).status_code == 403
    assert client.get("/v2/health/ready", headers={"origin": origin}).status_code == 200  # reading is no use


def test_the_servers_own_pages_and_non_browsers_can(client: TestClient) -> None:
    for headers in ({}, {"origin": "http://testserver"}, {"origin": "http://TestServer:80"}):
        assert post_infer(client, **headers)[0] == 200, headers
        assert post_classify(client, **headers) == 200, headers
    assert post_infer(client, origin="http://example.com:8080", host="example.com:8080")[0] == 200


def test_allowed_origins_are_served_with_cors_headers(model_repo: Path) -> None:
    settings = Settings(models_dir=model_repo, intra_op_threads=1, warmup_runs=1, allowed_origins=[EVIL])
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        status, headers, _ = post_infer(client, origin=EVIL)
        assert status == 200 and headers["access-control-allow-origin"] == EVIL
        assert "Inference-Header-Content-Length" in headers["access-control-expose-headers"]
        response = client.post("/v1/classify", json={"inputs": [[0] * 784]}, headers={"origin": EVIL})
        assert response.status_code == 200 and response.headers["access-control-allow-origin"] == EVIL
        preflight = client.options(
            INFER, headers={"origin": EVIL, "access-control-request-method": "POST",
                            "access-control-request-headers": "content-type"},
        )  # fmt: skip
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == EVIL
        assert post_infer(client, origin="https://other.example")[0] == 403


def test_a_trailing_slash_is_answered_never_redirected_to_the_hosts_header(client: TestClient) -> None:
    for path in ("/v2/health/live/", "/v2/", "/v2/models/tiny-student/"):
        response = client.get(path, headers={"host": "attacker.example"}, follow_redirects=False)
        assert response.status_code == 200 and "location" not in response.headers, path
        assert response.json() == client.get(path.rstrip("/")).json() and "attacker" not in response.text


def test_the_docs_load_nothing_from_another_site(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "https://" not in html and "http://" not in html, html
        assets = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
        assert assets
        for asset in assets:
            response = client.get(asset)
            assert response.status_code == 200 and len(response.content) > 0, asset


def test_an_unexpected_error_is_still_a_json_error(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:  # a bug anywhere behind a route
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500 and response.json() == {"error": "internal error serving GET /boom"}
