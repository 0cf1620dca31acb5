"""What the web page reads: the page and its assets, `/v1/models`, `/v1/samples`, `/v1/stats`, and
`/v1/compare?a=&b=` (any two models)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from servers import wait_ready
from tiny_models import LABELS, add_model, mlp_student

from modelrepo.card import Ensemble, EnsembleMember
from modelrepo.layout import card_path, read_card, write_card
from modelrepo.samples import SampleImage, SampleIndex, samples_dir, write_index
from service.app import create_app
from service.routes.page import ASSETS, PAGE_DIR
from service.settings import Settings

STUDENT, TEACHER = "tiny-student", "tiny-teacher"
ROWS = {"inputs": np.random.default_rng(0).integers(0, 256, (3, 784)).tolist(), "labels": [0, 1, 2]}
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # a name inside SVG markup, never fetched


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def write_samples(repo: Path, count: int = 2) -> list[bytes]:
    """`count` PNGs and their index, as training writes them (`modelrepo.samples`)."""
    samples_dir(repo).mkdir(parents=True)
    pngs, entries = [], []
    for i in range(count):
        out = io.BytesIO()
        Image.fromarray(np.full((28, 28), 40 * i, dtype=np.uint8)).save(out, format="PNG")
        name = f"{i}-{LABELS[i].lower().replace('/', '-')}.png"
        (samples_dir(repo) / name).write_bytes(out.getvalue())
        pngs.append(out.getvalue())
        entries.append(SampleImage(file=name, label=LABELS[i], class_index=i, test_index=10 + i))
    write_index(repo, SampleIndex(dataset="tests", samples=entries))
    return pngs


# -- the page -----------------------------------------------------------------------------------------------------
def test_the_page_and_every_asset_it_names_are_served_with_a_same_origin_policy(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "script-src 'self'" in csp
    texts = {"index.html": page.text}
    for asset, media_type in ASSETS.items():
        response = client.get(f"/page/{asset}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(media_type), asset
        texts[asset] = response.text
    referenced = set(re.findall(r"page/([\w.-]+)", page.text))
    imported = {m for text in texts.values() for m in re.findall(r'from "\./([\w.-]+)"', text)}
    assert referenced | imported <= set(ASSETS), "the page loads a file the server does not serve"
    shipped = {p.name for p in PAGE_DIR.iterdir()} - {"index.html"}
    assert shipped == set(ASSETS), "a file in service/page/ is not served, or a served one is missing"
    for name, text in texts.items():
        assert not re.findall(r"(?:https?:)?//[\w.-]+", text.replace(SVG_NAMESPACE, "")), f"{name} names a URL"
        # relative to the page, so that a proxy may serve it under a path prefix
        assert not re.findall(r"""["'`(]/(?:v1|v2|page|docs|metrics)\b""", text), f"{name} has an absolute path"


@pytest.mark.parametrize("asset", ["app.py", "..%2Fapp.py", "..%2F..%2Fpyproject.toml", "index.html", "nope.js"])
def test_an_asset_outside_the_table_is_404(client: TestClient, asset: str) -> None:
    response = client.get(f"/page/{asset}")
    assert response.status_code == 404 and response.json()["error"]


def test_the_page_is_not_an_api_operation(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and not any(p.startswith("/page") for p in paths)
    assert {"/v1/models", "/v1/samples", "/v1/samples/{file}", "/v1/stats"} <= set(paths)


# -- /v1/models ---------------------------------------------------------------------------------------------------
def test_models_describe_every_card_in_plain_words_and_name_the_pair(client: TestClient) -> None:
    doc = client.get("/v1/models").json()
    assert doc["pair"] == {"student": STUDENT, "teacher": TEACHER}
    assert doc["loaded"] is True and doc["failed"] == {} and doc["cascade_threshold"] == 0.8
    by_name = {m["name"]: m for m in doc["models"]}
    assert list(by_name) == [STUDENT, TEACHER]
    student = by_name[STUDENT]
    assert (student["role"], student["teacher"], student["method"], student["version"]) == ("student", TEACHER, "kd", 1)
    assert student["test_accuracy"] == 0.85 and student["parameters"] == 1000 and student["labels"] == LABELS
    assert student["method_words"].startswith("Hinton distillation")
    assert "distilled from tiny-teacher" in student["summary"] and "85.00%" in student["summary"]
    assert by_name[TEACHER]["method_words"] == "trained on the labels (the teacher)"


def test_a_model_that_failed_to_load_is_listed_with_its_reason(model_repo: Path) -> None:
    path = add_model(model_repo, "broken-student", mlp_student(), "student", teacher=TEACHER)
    path.write_bytes(path.read_bytes() + b"tampered")
    with TestClient(create_app(Settings(models_dir=model_repo, intra_op_threads=1, warmup_runs=1))) as client:
        wait_ready(client)
        doc = client.get("/v1/models").json()
    assert [m["name"] for m in doc["models"]] == [STUDENT, TEACHER]
    assert "sha256" in doc["failed"]["broken-student"]


def test_an_ensemble_teacher_lists_its_members_and_new_names_have_words(model_repo: Path) -> None:
    card = read_card(card_path(model_repo, TEACHER))
    member = EnsembleMember(name="m0", architecture="conv", parameters=10, test_accuracy=0.9, sha256="a" * 64)
    record = card.versions[1].model_copy(update={"architecture": "ensemble"})
    ensemble = Ensemble(members=[member, member.model_copy(update={"name": "m1", "architecture": "resnet"})])
    write_card(model_repo, card.model_copy(update={"ensemble": ensemble, "versions": {1: record}}))
    with TestClient(create_app(Settings(models_dir=model_repo, intra_op_threads=1, warmup_runs=1))) as client:
        wait_ready(client)
        teacher = next(m for m in client.get("/v1/models").json()["models"] if m["name"] == TEACHER)
    assert teacher["ensemble"] == ["m0", "m1"]
    assert teacher["architecture_words"] == "ensemble of several networks in one graph"


# -- /v1/samples --------------------------------------------------------------------------------------------------
def test_without_samples_the_list_is_empty_and_says_why(client: TestClient, settings: Settings) -> None:
    doc = client.get("/v1/samples").json()
    assert doc["samples"] == [] and "has no samples/index.json" in doc["note"]
    assert str(settings.models_dir) not in doc["note"]  # no server path


def test_samples_are_listed_with_their_labels_and_served_as_png(model_repo: Path, settings: Settings) -> None:
    pngs = write_samples(model_repo)
    (samples_dir(model_repo) / "9-unlisted.png").write_bytes(pngs[0])
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        doc = client.get("/v1/samples").json()
        assert doc["note"] is None and doc["dataset"] == "tests"
        assert [(s["label"], s["class_index"], s["test_index"]) for s in doc["samples"]] == [
            (LABELS[0], 0, 10),
            (LABELS[1], 1, 11),
        ]
        for entry, png in zip(doc["samples"], pngs, strict=True):
            image = client.get(entry["url"])
            assert image.status_code == 200 and image.headers["content-type"] == "image/png"
            assert image.content == png
        for name in ("9-unlisted.png", "index.json"):
            response = client.get(f"/v1/samples/{name}")
            assert response.status_code == 404 and "/v1/samples lists them" in response.json()["error"]
        assert client.get("/v1/samples/..%2F..%2Ftiny-student%2Fconfig.json").status_code == 404
        assert [m["name"] for m in client.get("/v1/models").json()["models"]] == [STUDENT, TEACHER]


def test_a_broken_sample_index_is_an_empty_list_not_an_error(model_repo: Path, settings: Settings) -> None:
    write_samples(model_repo)
    (samples_dir(model_repo) / "index.json").write_text('{"samples": [{"file": "../../etc/passwd"}]}')
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        doc = client.get("/v1/samples").json()
        assert doc["samples"] == [] and "not a valid sample index" in doc["note"]
        assert client.get("/v1/samples/0-t-shirt-top.png").status_code == 404


# -- /v1/stats ----------------------------------------------------------------------------------------------------
def test_stats_are_the_metrics_as_json(client: TestClient) -> None:
    assert client.post("/v1/compare", json=ROWS).status_code == 200
    assert (
        client.post("/v1/classify?route=cascade&threshold=1.0", json={"inputs": ROWS["inputs"][:2]}).status_code == 200
    )
    stats = client.get("/v1/stats").json()
    found = scrape(client)
    for name in (STUDENT, TEACHER):
        figures = stats["models"][name]
        bound = (("model", name), ("role", figures["role"]))
        buckets = {
            float(dict(labels)["le"]): value
            for (sample, labels), value in found.items()
            if sample == "distill_inference_duration_seconds_bucket" and labels[1:] == bound and labels[0][1] != "+Inf"
        }
        assert len(buckets) == 24 and {le: c for le, c in figures["compute"]["buckets"]} == buckets
        assert figures["compute"]["count"] == found[("distill_inference_duration_seconds_count", bound)] >= 1
        assert figures["compute"]["sum"] == found[("distill_inference_duration_seconds_sum", bound)]
        assert figures["labeled"] == found[("distill_predictions_labeled_total", (("model", name),))]
        assert figures["correct"] == found[("distill_predictions_correct_total", (("model", name),))]
        success = (("model", name), ("outcome", "success"), ("role", figures["role"]))
        assert figures["requests"]["success"] == found[("distill_inference_requests_total", success)]
    cascade, compare = stats["agreement"]  # one entry per source, sorted by labels
    assert cascade["labels"] == {"source": "cascade", "student": STUDENT, "teacher": TEACHER}
    assert compare["labels"] == {"source": "compare", "student": STUDENT, "teacher": TEACHER}
    assert compare["agree"] + compare["disagree"] == 3  # the compare's rows
    assert cascade["agree"] + cascade["disagree"] == 2  # the two rows the cascade sent on
    assert stats["cascade"] == {"student": 0.0, "teacher": 2.0}  # threshold 1.0: every row falls back
    assert stats["endpoints"] == {"classify": 1.0, "compare": 1.0}
    assert stats["time"] > 0


def test_stats_buckets_are_cumulative_and_sorted(client: TestClient) -> None:
    client.post("/v1/classify", json=ROWS)
    buckets = client.get("/v1/stats").json()["models"][STUDENT]["compute"]["buckets"]
    bounds, counts = zip(*buckets, strict=True)
    assert list(bounds) == sorted(bounds) and list(counts) == sorted(counts) and counts[-1] >= 1


# -- /v1/compare?a=&b= --------------------------------------------------------------------------------------------
def test_compare_defaults_to_the_pair_and_names_each_side(client: TestClient) -> None:
    doc = client.post("/v1/compare", json=ROWS).json()
    assert (doc["a"]["model"], doc["b"]["model"]) == (STUDENT, TEACHER)
    assert (doc["a"]["role"], doc["b"]["role"]) == ("student", "teacher")
    assert doc["student"] == doc["a"] and doc["teacher"] == doc["b"]
    assert doc["speedup"] == pytest.approx(doc["b"]["compute_ms"] / doc["a"]["compute_ms"])


def test_compare_any_two_models_in_either_order(client: TestClient) -> None:
    swapped = client.post(f"/v1/compare?a={TEACHER}&b={STUDENT}", json=ROWS).json()
    default = client.post("/v1/compare", json=ROWS).json()
    assert (swapped["a"]["model"], swapped["b"]["model"]) == (TEACHER, STUDENT)
    assert swapped["teacher"] == swapped["a"] and swapped["student"] == swapped["b"]
    assert swapped["a"]["predictions"] == default["b"]["predictions"] and swapped["agree"] == default["agree"]
    assert swapped["speedup"] == pytest.approx(swapped["b"]["compute_ms"] / swapped["a"]["compute_ms"])
    found = scrape(client)
    agreement = sum(v for (name, _), v in found.items() if name == "distill_agreement_total")
    assert agreement == 6  # both orders count as the student/teacher pair, under the same labels


def test_comparing_two_students_counts_no_student_teacher_agreement(model_repo: Path) -> None:
    add_model(model_repo, "other-student", mlp_student(seed=7), "student", teacher=TEACHER)
    with TestClient(create_app(Settings(models_dir=model_repo, intra_op_threads=1, warmup_runs=1))) as client:
        wait_ready(client)
        doc = client.post(f"/v1/compare?a=other-student&b={STUDENT}", json=ROWS).json()
        assert (doc["a"]["model"], doc["b"]["model"]) == ("other-student", STUDENT)
        assert "student" not in doc and "teacher" not in doc
        assert len(doc["agree"]) == 3 and 0 <= doc["agreement"] <= 1
        assert not [k for k in scrape(client) if k[0] == "distill_agreement_total"]
        same = client.post(f"/v1/compare?a={STUDENT}&b={STUDENT}", json=ROWS).json()
        assert same["agree"] == [True] * 3 and same["a"]["predictions"] == same["b"]["predictions"]


@pytest.mark.parametrize("query", ["a=nope", "b=nope", f"a={STUDENT}&b=nope"])
def test_compare_with_an_unknown_model_is_404_naming_the_served_ones(client: TestClient, query: str) -> None:
    response = client.post(f"/v1/compare?{query}", json=ROWS)
    assert response.status_code == 404
    assert "unknown model 'nope'" in response.json()["error"] and STUDENT in response.json()["error"]
