"""A real headless browser for tests: Debian's chromium, driven by playwright over CDP (playwright's own browser
download cannot work offline). Each page is watched: its console errors and every URL it requests."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tiers import require

# Chromium phones home (component updates, sync, field trials, QUIC probes) unless told not to; in this closed
# network those connections are refused and would show as errors. Playwright gives each launch a fresh profile
# (--user-data-dir in a new temporary folder) and runs it headless.
CHROMIUM_FLAGS = [
    "--no-sandbox",  # root in a container has no user namespace to sandbox into
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str:
    path = shutil.which("chromium")
    require(path is not None, "Debian's chromium is not installed (apt-get install chromium)")
    assert path is not None
    return path


@contextlib.contextmanager
def launched() -> Iterator[Any]:
    """The system chromium under playwright, until the block ends."""
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed (pip install -e '.[dev]')")
        raise
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watched:
    """A page and what it did: console errors (and uncaught exceptions), and every URL it requested."""

    page: Any
    errors: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def foreign_requests(self, origin: str) -> list[str]:
        """Requests to anything but `origin`; blob: URLs are images the page made itself, in memory."""
        return [u for u in self.urls if not (u.startswith(origin + "/") or u.startswith(f"blob:{origin}/"))]


@contextlib.contextmanager
def watched_page(browser: Any, viewport: dict[str, int] = DESKTOP) -> Iterator[Watched]:
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(20_000)
    seen = Watched(page)
    page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.errors.append(f"uncaught: {e}"))
    page.on("request", lambda r: seen.urls.append(r.url))
    try:
        yield seen
    finally:
        context.close()
