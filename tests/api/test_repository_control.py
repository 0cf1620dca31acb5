"""Repository control, as Triton's model-control modes: the index in every mode; load and unload refused (403)
unless `model_control=explicit`, which needs the bearer token; load reads the card again and checks the sha256,
and a version that fails leaves what was served serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from servers import wait_ready
from tiny_models import add_version, mlp_student

from service.app import create_app
from service.settings import Settings

STUDENT, TEACHER = "tiny-student", "tiny-teacher"
TOKEN = "s3cret-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
INFER = f"/v2/models/{STUDENT}/infer"
BODY = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": [0.0] * 784}]}


@pytest.fixture
def explicit(model_repo: Path) -> Iterator[TestClient]:
    settings = Settings(models_dir=model_repo, intra_op_threads=1, warmup_runs=1, model_control="explicit",
                        control_token=TOKEN)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client


def index(client: TestClient) -> dict[tuple[str, str | None], dict[str, str]]:
    response = client.post("/v2/repository/index")
    assert response.status_code == 200
    return {(e["name"], e.get("version")): e for e in response.json()}


@pytest.mark.parametrize("mode", ["none", "poll"])
def test_load_and_unload_are_403_unless_explicit_and_the_index_still_answers(model_repo: Path, mode: str) -> None:
    settings = Settings(models_dir=model_repo, intra_op_threads=1, warmup_runs=1, model_control=mode)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        for action in ("load", "unload"):
            response = client.post(f"/v2/repository/models/{STUDENT}/{action}", headers=AUTH)
            assert response.status_code == 403, response.text
            assert f"model control is '{mode}'" in response.json()["error"] and "explicit" in response.json()["error"]
        assert client.post(INFER, json=BODY).status_code == 200  # nothing was unloaded
        entries = index(client)
        assert entries[(STUDENT, "1")] == {"name": STUDENT, "version": "1", "state": "READY", "reason": ""}
        assert entries[(TEACHER, "1")]["state"] == "READY"
        ready_only = client.post("/v2/repository/index", json={"ready": True}).json()
        assert len(ready_only) == 2


def test_explicit_mode_needs_the_token(explicit: TestClient) -> None:
    unload = f"/v2/repository/models/{STUDENT}/unload"
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}, {"authorization": "Basic x"}):
        response = explicit.post(unload, headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer"), headers
        assert "Authorization: Bearer" in response.json()["error"]
    assert explicit.post(INFER, json=BODY).status_code == 200  # still served


def test_unload_then_load(explicit: TestClient) -> None:
    assert explicit.post(f"/v2/repository/models/{STUDENT}/unload", headers=AUTH).json() == {
        "name": STUDENT, "state": "UNAVAILABLE",
    }  # fmt: skip
    response = explicit.post(INFER, json=BODY)
    assert response.status_code == 503 and "is unloaded" in response.json()["error"]
    assert explicit.get(f"/v2/models/{STUDENT}/ready").status_code == 503
    assert explicit.post("/v1/classify", json={"inputs": [[0] * 784]}).status_code == 503  # route=student: down
    entry = index(explicit)[(STUDENT, "1")]
    assert entry["state"] == "UNAVAILABLE" and "unloaded" in entry["reason"]
    assert explicit.get("/v2/health/ready").status_code == 200  # the teacher is served
    response = explicit.post(f"/v2/repository/models/{STUDENT}/load", headers=AUTH)
    assert response.status_code == 200 and response.json() == {"name": STUDENT, "versions": ["1"]}
    assert explicit.post(INFER, json=BODY).status_code == 200
    assert index(explicit)[(STUDENT, "1")]["state"] == "READY"


def test_load_reads_the_card_again_and_serves_the_new_version(explicit: TestClient, model_repo: Path) -> None:
    add_version(model_repo, STUDENT, mlp_student(seed=5), 2)
    assert explicit.post(INFER, json=BODY).json()["model_version"] == "1"  # explicit mode does not poll
    response = explicit.post(f"/v2/repository/models/{STUDENT}/load", headers=AUTH, json={"parameters": {}})
    assert response.status_code == 200 and response.json()["versions"] == ["2"]
    assert explicit.post(INFER, json=BODY).json()["model_version"] == "2"


def test_a_load_that_fails_the_sha256_is_400_and_the_old_version_keeps_serving(
    explicit: TestClient, model_repo: Path
) -> None:
    add_version(model_repo, STUDENT, mlp_student(seed=5), 2, sha256="0" * 64)
    response = explicit.post(f"/v2/repository/models/{STUDENT}/load", headers=AUTH)
    assert response.status_code == 400
    assert "version 2" in response.json()["error"] and "sha256" in response.json()["error"]
    assert "/" not in response.json()["error"].split("sha256")[0]  # no path in what clients see
    assert explicit.post(INFER, json=BODY).json()["model_version"] == "1"
    entries = index(explicit)
    assert entries[(STUDENT, "1")]["state"] == "READY"
    assert entries[(STUDENT, "2")]["state"] == "UNAVAILABLE" and "sha256" in entries[(STUDENT, "2")]["reason"]
    assert explicit.get(f"/v2/models/{STUDENT}/versions/2/ready").status_code == 503


def test_loading_what_is_not_there_or_with_overrides_is_refused(explicit: TestClient) -> None:
    response = explicit.post("/v2/repository/models/nope/load", headers=AUTH)
    assert response.status_code == 404 and "not in the model repository" in response.json()["error"]
    assert explicit.post("/v2/repository/models/nope/unload", headers=AUTH).status_code == 404
    config = {"parameters": {"config": "{}"}}
    response = explicit.post(f"/v2/repository/models/{STUDENT}/load", headers=AUTH, json=config)
    assert response.status_code == 400 and "from its repository only" in response.json()["error"]
    response = explicit.post(f"/v2/repository/models/{STUDENT}/load", headers=AUTH, content=b"[1")
    assert response.status_code == 400 and "malformed JSON" in response.json()["error"]
    response = explicit.post("/v2/repository/index", json={"ready": "yes"})
    assert response.status_code == 400


def test_explicit_mode_refuses_to_start_without_a_token_or_with_several_workers(model_repo: Path) -> None:
    with pytest.raises(ValidationError, match="control_token"):
        Settings(models_dir=model_repo, model_control="explicit")
    with pytest.raises(ValidationError, match="workers=1"):
        Settings(models_dir=model_repo, model_control="explicit", control_token=TOKEN, workers=2)
    opted_out = Settings(models_dir=model_repo, intra_op_threads=1, warmup_runs=1, model_control="explicit",
                         control_allow_unauthenticated=True)  # fmt: skip
    with TestClient(create_app(opted_out)) as client:
        wait_ready(client)
        assert client.post(f"/v2/repository/models/{STUDENT}/unload").status_code == 200


def test_the_token_never_shows_in_settings_output(model_repo: Path) -> None:
    settings = Settings(models_dir=model_repo, model_control="explicit", control_token=TOKEN)
    assert TOKEN not in repr(settings) and TOKEN not in settings.model_dump_json()
