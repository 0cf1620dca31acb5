"""`/docs` and `/redoc` render in a real browser that can reach nothing but the service: their JavaScript comes
from the installed package, not a CDN (offline and air-gapped clusters got a blank page)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from servers import Server
from tiers import require

OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"  # every other host fails to resolve


def rendered(url: str) -> str:
    """The DOM of `url` after its scripts ran, from headless chromium (as root it needs --no-sandbox)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    require(chromium is not None, "chromium is not installed (make system-deps installs it)")
    assert chromium is not None
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", "--virtual-time-budget=10000"]
    done = subprocess.run([*command, OFFLINE, url], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


@pytest.mark.parametrize(
    ("page", "marks"),
    [
        ("/docs", ['data-path="/v1/classify"', 'data-path="/v2/models/{name}/infer"']),
        ("/redoc", ["/v1/classify", "Open Inference Protocol v2 inference"]),
    ],
)
def test_the_docs_render_offline(server: Server, page: str, marks: list[str]) -> None:
    dom = rendered(server.url + page)
    for mark in marks:
        assert mark in dom, dom[-2000:]
    assert "Unable to render" not in dom
