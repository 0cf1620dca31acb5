"""Live version rollout (`model_control=poll`) in-process: a new version whose card and sha256 check out is loaded
beside the old and swapped in; a broken one is reported and the old keeps serving; the version policy (setting,
card, per-model override) decides what is served; the replaced version is closed. Under real load and with
several workers: tests/integration/test_rollout_under_load.py."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from servers import until as wait_until
from servers import wait_ready
from tiny_models import add_version, mlp_student

from modelrepo.card import VersionPolicy
from modelrepo.layout import card_path, model_path, read_card, write_card
from service.app import create_app
from service.settings import ModelOverrides, Settings

STUDENT = "tiny-student"
INFER = f"/v2/models/{STUDENT}/infer"
X = np.random.default_rng(0).normal(0, 1, (1, 1, 28, 28)).astype(np.float32)
BODY = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": X.ravel().tolist()}]}
POLL_S = 0.05


def poll_settings(repo: Path, **changes: object) -> Settings:
    return Settings.model_validate({
        "models_dir": repo, "intra_op_threads": 1, "warmup_runs": 1, "model_control": "poll",
        "repository_poll_s": POLL_S, **changes,
    })  # fmt: skip


@pytest.fixture
def polled(model_repo: Path) -> Iterator[TestClient]:
    with TestClient(create_app(poll_settings(model_repo))) as client:
        wait_ready(client)
        yield client


until = functools.partial(wait_until, deadline_s=10.0)  # how long this module's conditions may take


def served_versions(client: TestClient) -> list[str]:
    versions: list[str] = client.get(f"/v2/models/{STUDENT}").json()["versions"]
    return versions


def answer(client: TestClient, path: str = INFER) -> tuple[str, np.ndarray]:
    doc = client.post(path, json=BODY).json()
    return doc["model_version"], np.reshape(doc["outputs"][0]["data"], (1, 10))


def expected(repo: Path, version: int) -> np.ndarray:
    session = ort.InferenceSession(str(model_path(repo, STUDENT, version)), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["logits"], {"input": X})[0])


def student_index(client: TestClient) -> dict[str, dict[str, str]]:
    entries = client.post("/v2/repository/index").json()
    return {e["version"]: e for e in entries if e["name"] == STUDENT and "version" in e}


def info_versions(client: TestClient) -> dict[str, float]:
    families = text_string_to_metric_families(client.get("/metrics").text)
    return {
        s.labels["version"]: s.value
        for f in families
        for s in f.samples
        if s.name == "distill_model_info" and s.labels["model"] == STUDENT
    }


def test_a_new_version_is_swapped_in_and_the_old_one_closed(polled: TestClient, model_repo: Path) -> None:
    assert answer(polled)[0] == "1"
    old = polled.app.state.dataplane.registry.models[STUDENT]  # type: ignore[attr-defined]
    add_version(model_repo, STUDENT, mlp_student(seed=5), 2)
    until(lambda: served_versions(polled) == ["2"], "version 2 served")
    version, logits = answer(polled)
    assert version == "2"
    np.testing.assert_allclose(logits, expected(model_repo, 2), rtol=1e-5, atol=1e-5)
    assert not np.allclose(expected(model_repo, 1), expected(model_repo, 2))  # the swap is visible in answers
    assert polled.get(f"/v2/models/{STUDENT}/versions/1").status_code == 404
    assert polled.get("/v2/health/ready").status_code == 200
    batcher = old.batcher
    del old
    until(lambda: not batcher.serving, "version 1 closed once no request holds it")
    assert info_versions(polled) == {"2": 1.0}


def test_a_broken_new_version_is_reported_and_the_old_keeps_serving(polled: TestClient, model_repo: Path) -> None:
    add_version(model_repo, STUDENT, mlp_student(seed=5), 2, sha256="0" * 64)
    index: dict[str, dict[str, str]] = {}

    def reported() -> bool:
        index.update(student_index(polled))
        return index.get("2", {}).get("state") == "UNAVAILABLE"

    until(reported, "version 2 reported")
    assert "does not match its card" in index["2"]["reason"] and index["1"]["state"] == "READY"
    assert answer(polled)[0] == "1" and served_versions(polled) == ["1"]
    response = polled.get(f"/v2/models/{STUDENT}/versions/2/ready")
    assert response.status_code == 503 and "sha256" in response.json()["error"]
    assert polled.get("/v2/health/ready").status_code == 200
    # Fixed in place (a new file with its right checksum): the next poll serves it.
    add_version(model_repo, STUDENT, mlp_student(seed=5), 2)
    until(lambda: served_versions(polled) == ["2"], "fixed version 2 served")


def test_a_version_whose_file_is_not_there_yet_waits_for_it(polled: TestClient, model_repo: Path) -> None:
    card = read_card(card_path(model_repo, STUDENT))
    path = add_version(model_repo, STUDENT, mlp_student(seed=5), 2)
    staged = path.rename(path.with_suffix(".later"))  # the card names version 2, its file is not there
    write_card(model_repo, card.model_copy(update={"versions": read_card(card_path(model_repo, STUDENT)).versions}))
    time.sleep(10 * POLL_S)
    assert served_versions(polled) == ["1"]
    staged.rename(path)
    until(lambda: served_versions(polled) == ["2"], "version 2 served once its file is there")


def test_latest_two_serves_both_and_requests_choose(model_repo: Path) -> None:
    with TestClient(create_app(poll_settings(model_repo, version_policy="latest:2"))) as client:
        wait_ready(client)
        add_version(model_repo, STUDENT, mlp_student(seed=5), 2)
        until(lambda: served_versions(client) == ["1", "2"], "versions 1 and 2 served")
        assert answer(client)[0] == "2"  # no version: the newest
        v1, logits = answer(client, f"/v2/models/{STUDENT}/versions/1/infer")
        assert v1 == "1"
        np.testing.assert_allclose(logits, expected(model_repo, 1), rtol=1e-5, atol=1e-5)
        config = client.get(f"/v2/models/{STUDENT}/config").json()
        assert config["version_policy"] == {"latest": {"num_versions": 2}}
        add_version(model_repo, STUDENT, mlp_student(seed=6), 3)
        until(lambda: served_versions(client) == ["2", "3"], "versions 2 and 3 served")


def test_a_pinned_policy_from_the_card_keeps_its_version(model_repo: Path) -> None:
    card = read_card(card_path(model_repo, STUDENT))
    write_card(model_repo, card.model_copy(update={"version_policy": VersionPolicy(pinned=[1])}))
    with TestClient(create_app(poll_settings(model_repo))) as client:
        wait_ready(client)
        add_version(model_repo, STUDENT, mlp_student(seed=5), 2)
        time.sleep(10 * POLL_S)
        assert served_versions(client) == ["1"] and answer(client)[0] == "1"
        entry = next(e for e in client.post("/v2/repository/index").json() if e.get("version") == "2")
        assert entry["state"] == "UNAVAILABLE" and "pinned:1" in entry["reason"]


def test_a_per_model_override_beats_the_card(model_repo: Path) -> None:
    card = read_card(card_path(model_repo, STUDENT))
    write_card(model_repo, card.model_copy(update={"version_policy": VersionPolicy(pinned=[1])}))
    overrides = {STUDENT: ModelOverrides(version_policy="latest")}
    with TestClient(create_app(poll_settings(model_repo, model_overrides=overrides))) as client:
        wait_ready(client)
        add_version(model_repo, STUDENT, mlp_student(seed=5), 2)
        until(lambda: served_versions(client) == ["2"], "version 2 served")


def test_a_model_folder_that_appears_is_served_and_one_that_leaves_is_not(polled: TestClient, model_repo: Path) -> None:
    extra = model_repo / "tiny-extra"
    (extra / "1").mkdir(parents=True)
    (extra / "1" / "model.onnx").hardlink_to(model_repo / STUDENT / "1" / "model.onnx")
    card = read_card(card_path(model_repo, STUDENT))
    write_card(model_repo, card.model_copy(update={"name": "tiny-extra"}))
    until(lambda: polled.get("/v2/models/tiny-extra/ready").status_code == 200, "the new model served")
    for path in sorted(extra.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    extra.rmdir()
    until(lambda: polled.get("/v2/models/tiny-extra/ready").status_code == 404, "the removed model gone")
    assert polled.get("/v2/health/ready").status_code == 200


def test_a_card_that_breaks_leaves_the_served_version_serving(polled: TestClient, model_repo: Path) -> None:
    card_path(model_repo, STUDENT).write_text("{not json")
    index: dict[str, dict[str, str]] = {}

    def reported() -> bool:
        index.update(student_index(polled))
        return "not a valid model card" in index.get("1", {}).get("reason", "")

    until(reported, "the broken card reported")
    assert index["1"]["state"] == "READY" and "still serving version(s) [1]" in index["1"]["reason"]
    assert answer(polled)[0] == "1"


@pytest.mark.parametrize("text", ["newest", "latest:0", "latest:x", "pinned:", "pinned:a,b", "pinned:0"])
def test_a_bad_version_policy_is_a_clear_settings_error(model_repo: Path, text: str) -> None:
    with pytest.raises(ValueError, match="version policy"):
        poll_settings(model_repo, version_policy=text)
