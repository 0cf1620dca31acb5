"""The web page at `/`, in a real headless chromium against a real `python -m service` on the quick models.

Screenshots (desktop 1280x800 and a phone's 390x844) land in the session's temporary folder, `page-screenshots`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from browser import DESKTOP, PHONE, Watched, launched, watched_page
from PIL import Image
from servers import Server, run_service

from modelrepo.dataset import load_test_split
from modelrepo.layout import list_model_dirs, read_card
from modelrepo.samples import read_index

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
STUDENT, TEACHER = "fmnist-student", "fmnist-teacher"


def served(build: Path) -> list[Path]:
    """The models of the quick build's repository: the pair, and the INT8 copies the gate published."""
    return list_model_dirs(build / "models")


@pytest.fixture(scope="module")
def server(quick_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_service(quick_build / "models", tmp_path_factory.mktemp("page") / "service.log") as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("page-screenshots")


@contextlib.contextmanager
def open_page(browser: Any, server: Server, viewport: dict[str, int] = DESKTOP) -> Iterator[Watched]:
    """The page, loaded: model cards, samples and the first live figures shown."""
    with watched_page(browser, viewport) as seen:
        seen.page.goto(server.url + "/")
        seen.page.wait_for_selector("#status.pill-ok")
        seen.page.wait_for_selector("button.sample")
        seen.page.wait_for_selector('[data-figure="rps"]')
        yield seen


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Watched]:
    with open_page(browser, server) as seen:
        yield seen


def image_file(folder: Path, pixels: np.ndarray, name: str) -> Path:
    """A PNG or (by its suffix) JPEG of these pixels."""
    path = folder / name
    Image.fromarray(pixels).save(path, format="JPEG" if path.suffix == ".jpg" else "PNG")
    return path


def shown_side(page: Any, model: str, row: int = 0) -> dict[str, Any]:
    side = page.locator(".result").nth(row).locator(f'.side[data-model="{model}"]')
    bars = side.locator(".bars li")
    return {
        "label": side.locator(".answer .label").inner_text(),
        "top": [(li.locator(".bar-label").inner_text(), li.locator(".bar-value").inner_text()) for li in bars.all()],
    }


def api_side(answer: dict[str, Any], row: int = 0) -> dict[str, Any]:
    prediction = answer["predictions"][row]
    return {
        "label": prediction["label"],
        "top": [(t["label"], f"{t['probability'] * 100:.1f}%") for t in prediction["top"]],
    }


def test_the_page_loads_cleanly_and_asks_nothing_but_this_server(
    page: Watched, server: Server, quick_build: Path
) -> None:
    cards = page.page.locator("article.card")
    assert cards.count() == len(served(quick_build))
    for name in (STUDENT, TEACHER):
        accuracy = read_card(quick_build / "models" / name / "config.json").versions[1].test_accuracy
        card = page.page.get_by_label(f"Model card: {name}", exact=True)
        assert f"{accuracy * 100:.2f}% at export" in card.inner_text()
    assert "fewer parameters" in page.page.get_by_label(f"Model card: {STUDENT}", exact=True).inner_text()
    assert page.page.locator("#model-a").input_value() == STUDENT
    assert page.page.locator("#model-b").input_value() == TEACHER
    page.page.wait_for_timeout(2500)  # a second poll of the live panel
    assert page.errors == []
    assert page.foreign_requests(server.url) == []
    assert any(u.endswith("/v1/stats") for u in page.urls)


def test_uploaded_images_show_both_answers_as_the_api_gives_them(page: Watched, server: Server, tmp_path: Path) -> None:
    images, _ = load_test_split()
    paths = [image_file(tmp_path, images[100], "upload.png"), image_file(tmp_path, images[101], "photo.jpg")]
    page.page.set_input_files("#files", [str(p) for p in paths])  # test images that are not samples
    page.page.wait_for_function("() => document.querySelectorAll('.result').length === 2")
    files = [("files", (p.name, p.read_bytes())) for p in paths]
    answer = httpx.post(f"{server.url}/v1/compare", files=files).json()
    for row in range(2):
        for side in ("a", "b"):
            assert shown_side(page.page, answer[side]["model"], row) == api_side(answer[side], row)
    assert page.page.locator(".result .true-label").count() == 0  # an upload's true label is unknown
    cascade = page.page.locator(".result .cascade").first.inner_text()
    assert re.match(r"Cascade at 0\.\d\d: the (student answers|student is unsure, the teacher answers)", cascade)
    assert page.errors == [] and page.foreign_requests(server.url) == []


def test_a_dropped_image_is_answered(page: Watched, server: Server, tmp_path: Path) -> None:
    path = image_file(tmp_path, load_test_split()[0][102], "dropped.png")
    drop = """async ([name, bytes]) => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([new Uint8Array(bytes)], name, { type: "image/png" }));
        document.getElementById("dropzone").dispatchEvent(new DragEvent("drop", { dataTransfer: transfer }));
    }"""
    page.page.evaluate(drop, [path.name, list(path.read_bytes())])
    page.page.wait_for_selector(".result")
    answer = httpx.post(f"{server.url}/v1/compare", files={"files": (path.name, path.read_bytes())}).json()
    assert shown_side(page.page, STUDENT) == api_side(answer["student"])
    assert page.page.locator(".result figcaption .file").inner_text() == "dropped.png"


def test_a_sample_shows_its_true_label_and_whether_each_model_got_it(page: Watched, quick_build: Path) -> None:
    samples = read_index(quick_build / "models").samples
    boot = next(s for s in samples if s.label == "Ankle boot")
    page.page.get_by_role("button", name=f"Test image {boot.file}, true label Ankle boot").click()
    page.page.wait_for_selector(".result")
    assert page.page.locator(".result .true-label").inner_text() == "true: Ankle boot"
    for model in (STUDENT, TEACHER):
        side = shown_side(page.page, model)
        mark = page.page.locator(f'.side[data-model="{model}"] .mark').inner_text()
        assert mark == ("✓ right" if side["label"] == "Ankle boot" else "✗ wrong")
    page.page.get_by_role("button", name="Try them all").click()
    page.page.wait_for_function(f"() => document.querySelectorAll('.result').length === {len(samples)}")
    shown = page.page.locator(".result .true-label").all_inner_texts()
    assert shown == [f"true: {s.label}" for s in samples]
    assert "agree on" in page.page.locator(".run-summary").inner_text()


def test_a_file_that_is_not_an_image_shows_the_apis_error(
    page: Watched, server: Server, tmp_path: Path, quick_build: Path
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a picture\n")
    page.page.set_input_files("#files", str(path))
    error = page.page.wait_for_selector(".results .error")
    api = httpx.post(f"{server.url}/v1/compare", files={"files": ("notes.txt", path.read_bytes())})
    assert api.status_code == 422
    assert error.inner_text() == f"The service answered 422: {api.json()['error']}"
    assert page.page.locator("article.card").count() == len(served(quick_build))  # the rest of the page stays
    assert all("status of 422" in e for e in page.errors), page.errors  # chromium logs each refused request


def test_a_stopped_service_is_said_so_not_a_blank_page(browser: Any, model_repo: Path, tmp_path: Path) -> None:
    with watched_page(browser) as seen:
        with run_service(model_repo, tmp_path / "service.log") as tiny:  # tiny models, no sample images
            seen.page.goto(tiny.url + "/")
            seen.page.wait_for_selector("#status.pill-ok")
            assert "no sample images" in seen.page.locator("#samples").inner_text()
        image = image_file(tmp_path, load_test_split()[0][0], "late.png")
        seen.page.set_input_files("#files", str(image))
        error = seen.page.wait_for_selector(".results .error").inner_text()
        assert error.startswith("cannot reach the service")
        seen.page.wait_for_selector("#live .error")
        assert seen.page.locator("article.card").count() == 2


def test_the_live_panel_moves_with_traffic(page: Watched, server: Server) -> None:
    rps = page.page.locator('[data-figure="rps"] .value')
    before = rps.inner_text()
    body = {"inputs": load_test_split()[0][:4].reshape(4, -1).tolist(), "labels": [9, 2, 1, 1]}
    with httpx.Client(base_url=server.url) as client:
        for _ in range(20):
            assert client.post("/v1/compare", json=body).status_code == 200
    page.page.wait_for_function(
        "before => { const v = document.querySelector('[data-figure=\"rps\"] .value').textContent;"
        " return v !== before && parseFloat(v) > 0; }",
        arg=before,
    )
    p50 = page.page.locator(f'table.compute tr:has(th:text-is("{STUDENT}")) td[data-stat="p50"]').inner_text()
    assert re.fullmatch(r"[\d.]+ (µs|ms)", p50)
    tiles = [tile.inner_text() for tile in page.page.locator('[data-figure="agreement"]').all()]  # one per source
    assert any(text.lower().startswith("agreement (compare)") for text in tiles), tiles  # CSS capitalises
    assert all(f"{STUDENT} and {TEACHER} on" in text and "%" in text for text in tiles), tiles
    assert f"{STUDENT} " in page.page.locator('[data-figure="accuracy"]').inner_text()


def prometheus_quantile(q: float, buckets: list[list[float]], total: float) -> float | None:
    """histogram_quantile as Prometheus computes it, on finite cumulative buckets and the total count."""
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank and cumulative > below:
            return lower + (bound - lower) * (rank - below) / (cumulative - below)
        lower, below = bound, cumulative
    return buckets[-1][0]


def test_the_live_figures_are_what_prometheus_would_compute(page: Watched, server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        first = client.get("/v1/stats").json()
        for rows in (1, 3, 8):
            client.post("/v1/classify", json={"inputs": [[0] * 784] * rows}).raise_for_status()
        last = client.get("/v1/stats").json()
    pair = {"student": STUDENT, "teacher": TEACHER}
    shown = page.page.evaluate(
        "async ([now, then, pair]) => (await import('/page/live.js')).figures(now, then, pair)", [last, first, pair]
    )
    now, then = last["models"][STUDENT]["compute"], first["models"][STUDENT]["compute"]
    window = [[le, c - dict(map(tuple, then["buckets"]))[le]] for le, c in now["buckets"]]
    for q, key in ((0.5, "p50"), (0.99, "p99")):
        expected = prometheus_quantile(q, window, now["count"] - then["count"])
        assert shown["models"][STUDENT]["compute"][key] == pytest.approx(expected)
    answered = sum(last["endpoints"].values()) - sum(first["endpoints"].values())
    assert shown["rps"] == pytest.approx(answered / (last["time"] - first["time"]))
    first_poll = page.page.evaluate(  # one snapshot yet: no rate, and quantiles over all time
        "async ([now, pair]) => (await import('/page/live.js')).figures(now, null, pair)", [last, pair]
    )
    assert first_poll["rps"] is None and first_poll["models"][STUDENT]["compute"]["allTime"] is True
    all_time = prometheus_quantile(0.5, now["buckets"], now["count"])
    assert first_poll["models"][STUDENT]["compute"]["p50"] == pytest.approx(all_time)
    cases = [(0.5, [[1.0, 0.0], [2.0, 4.0], [4.0, 4.0]], 4.0), (0.99, [[1.0, 1.0]], 3.0), (0.5, [[1.0, 0.0]], 0.0)]
    got = page.page.evaluate(
        "async (cases) => { const m = await import('/page/live.js');"
        " return cases.map(([q, b, n]) => m.quantile(q, b, n)); }",
        cases,
    )
    assert got == [prometheus_quantile(*case) for case in cases] == [1.5, 1.0, None]


def test_keyboard_alone_picks_a_sample_and_moves_the_threshold(page: Watched) -> None:
    keys = page.page.keyboard
    for label in ("Model A", "Model B", "Cascade threshold"):
        assert page.page.get_by_label(label, exact=False).count() >= 1  # every control has a label
    focused: list[str] = []
    for _ in range(40):
        keys.press("Tab")
        focused.append(page.page.evaluate("() => document.activeElement.id || document.activeElement.className"))
        if focused[-1] == "sample":
            break
    assert {"model-a", "model-b", "threshold", "files"} <= set(focused) and focused[-1] == "sample"
    keys.press("Enter")
    page.page.wait_for_selector(".result .true-label")
    page.page.focus("#threshold")
    start = float(page.page.locator("#threshold-value").inner_text())
    for _ in range(5):
        keys.press("ArrowLeft")
    moved = f"{start - 0.05:.2f}"
    assert page.page.locator("#threshold-value").inner_text() == moved
    page.page.wait_for_function(f"() => document.querySelector('.cascade').textContent.includes('at {moved}')")


def test_the_two_models_can_be_picked(page: Watched) -> None:
    page.page.select_option("#model-a", TEACHER)
    page.page.select_option("#model-b", STUDENT)
    page.page.get_by_role("button", name="Try them all").click()
    page.page.wait_for_function("() => document.querySelectorAll('.result').length > 1")
    sides = page.page.locator(".result").first.locator(".side")
    assert [sides.nth(i).get_attribute("data-model") for i in range(2)] == [TEACHER, STUDENT]
    assert any(f"/v1/compare?a={TEACHER}&b={STUDENT}" in u for u in page.urls)


def test_screenshots_at_desktop_and_phone_sizes(browser: Any, server: Server, screenshots: Path) -> None:
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        with open_page(browser, server, viewport) as seen:
            page = seen.page
            page.wait_for_timeout(2500)  # the live panel's second poll: figures over a window
            page.screenshot(path=screenshots / f"{name}.png")
            page.get_by_role("button", name="Try them all").click()
            page.wait_for_function("() => document.querySelectorAll('.result').length > 1")
            page.wait_for_timeout(2500)
            page.evaluate("() => window.scrollTo(0, 0)")
            page.screenshot(path=screenshots / f"{name}-answers.png", full_page=True)
            scroll_width, width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
            assert scroll_width <= width, f"{name}: the page is {scroll_width} px wide on a {width} px screen"
            assert seen.errors == []
    print(f"screenshots: {screenshots}")
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        with Image.open(screenshots / f"{name}.png") as shot:
            assert shot.size == (viewport["width"], viewport["height"])
        with Image.open(screenshots / f"{name}-answers.png") as shot:
            assert shot.size[0] == viewport["width"] and shot.size[1] > viewport["height"]
