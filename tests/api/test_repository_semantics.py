"""What the repository means, said out loud: links out of it are not served, the friendly routes' student and
teacher follow a documented rule (no silent guess among several), a version missing on disk falls back to the newest
present one, a route whose model is down answers 503 naming it, and no error body shows a path, checksum or file."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from servers import wait_loaded, wait_ready
from tiny_models import add_model, make_card, mlp_student

from modelrepo.card import Quantization
from modelrepo.layout import card_path, model_path, sha256_file, write_card
from service.app import create_app
from service.settings import Settings

STUDENT, TEACHER = "tiny-student", "tiny-teacher"
ROWS = {"inputs": [[0] * 784]}


def settings_for(repo: Path, **changes: Any) -> Settings:
    return Settings(models_dir=repo, intra_op_threads=1, warmup_runs=1, **changes)


def infer(client: TestClient, name: str) -> Any:
    tensor = {"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": [0.0] * 784}
    return client.post(f"/v2/models/{name}/infer", json={"inputs": [tensor]})


def test_a_model_folder_linking_out_of_the_repository_is_not_listed(
    model_repo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outside = tmp_path / "elsewhere"
    add_model(outside, "intruder", mlp_student(seed=4), "student", teacher=TEACHER)
    (model_repo / "intruder").symlink_to(outside / "intruder", target_is_directory=True)
    with caplog.at_level(logging.WARNING), TestClient(create_app(settings_for(model_repo))) as client:
        wait_ready(client)
        assert client.get("/v2/models/intruder/ready").status_code == 404  # like an unknown model
        assert infer(client, "intruder").status_code == 404
        assert client.post("/v1/classify", json=ROWS).json()["model"] == STUDENT  # not an extra candidate
    assert any("'intruder'" in r.getMessage() and "outside the repository" in r.getMessage() for r in caplog.records)


def test_a_model_file_linking_out_of_the_repository_is_not_served(model_repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.onnx"
    shutil.move(model_path(model_repo, STUDENT, 1), outside)
    model_path(model_repo, STUDENT, 1).symlink_to(outside)
    with TestClient(create_app(settings_for(model_repo))) as client:
        wait_loaded(client)
        response = client.get(f"/v2/models/{STUDENT}/ready")
        assert response.status_code == 503 and "model.onnx" in response.json()["error"]


def test_several_students_and_no_setting_answer_503_naming_the_setting(
    model_repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    add_model(model_repo, "another-student", mlp_student(seed=9), "student", teacher=TEACHER)
    with caplog.at_level(logging.WARNING), TestClient(create_app(settings_for(model_repo))) as client:
        wait_ready(client)
        for query, path in (("", "/v1/classify"), ("?route=cascade", "/v1/classify"), ("", "/v1/compare")):
            response = client.post(path + query, json=ROWS)
            assert response.status_code == 503, response.text
            assert "DISTILL_STUDENT" in response.json()["error"] and "another-student" in response.json()["error"]
        assert client.post("/v1/classify?route=teacher", json=ROWS).json()["model"] == TEACHER
        assert client.post("/v1/classify?model=another-student", json=ROWS).status_code == 200  # by name: served
    assert any("DISTILL_STUDENT" in r.getMessage() for r in caplog.records)  # said at start


def test_the_student_setting_chooses_among_several(model_repo: Path) -> None:
    add_model(model_repo, "another-student", mlp_student(seed=9), "student", teacher=TEACHER)
    with TestClient(create_app(settings_for(model_repo, student="another-student"))) as client:
        wait_ready(client)
        assert client.post("/v1/classify", json=ROWS).json()["model"] == "another-student"
        compared = client.post("/v1/compare", json=ROWS).json()
        assert compared["student"]["model"] == "another-student" and compared["teacher"]["model"] == TEACHER


def test_a_quantized_copy_is_not_a_candidate_for_route_student(model_repo: Path) -> None:
    path = add_model(model_repo, "int8-student", mlp_student(seed=1), "student", teacher=TEACHER)
    card = make_card("int8-student", "student", path, teacher=TEACHER)
    quantization = Quantization(method="dynamic", fp32_model=STUDENT, fp32_accuracy=0.85, int8_accuracy=0.84,
                                max_drop=0.01)  # fmt: skip
    write_card(model_repo, card.model_copy(update={"quantization": quantization}))
    with TestClient(create_app(settings_for(model_repo))) as client:
        wait_ready(client)
        assert client.post("/v1/classify", json=ROWS).json()["model"] == STUDENT
        assert client.post("/v1/classify?model=int8-student", json=ROWS).status_code == 200


def test_a_version_missing_on_disk_falls_back_to_the_newest_present(
    model_repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = model_path(model_repo, STUDENT, 1)
    card = make_card(STUDENT, "student", path, teacher=TEACHER)
    record = card.versions[1]
    write_card(model_repo, card.model_copy(update={"versions": {1: record, 2: record}}))  # no 2/model.onnx
    with caplog.at_level(logging.WARNING), TestClient(create_app(settings_for(model_repo))) as client:
        wait_ready(client)
        assert client.get(f"/v2/models/{STUDENT}").json()["versions"] == ["1"]
        assert infer(client, STUDENT).json()["model_version"] == "1"
    assert any(STUDENT in r.getMessage() and "version 1" in r.getMessage() for r in caplog.records)


def test_routes_whose_model_is_down_answer_503_naming_it(model_repo: Path) -> None:
    model_path(model_repo, TEACHER, 1).write_bytes(b"tampered")
    with TestClient(create_app(settings_for(model_repo))) as client:
        wait_ready(client)  # the student is served
        for path in ("/v1/classify?route=teacher", "/v1/classify?route=cascade&threshold=1", "/v1/compare"):
            response = client.post(path, json=ROWS)
            assert response.status_code == 503, (path, response.text)
            assert TEACHER in response.json()["error"]
        assert client.post("/v1/classify?route=student", json=ROWS).status_code == 200


def test_a_student_whose_teacher_is_missing_answers_503_for_teacher_routes(model_repo: Path) -> None:
    shutil.rmtree(model_repo / TEACHER)
    with TestClient(create_app(settings_for(model_repo))) as client:
        wait_ready(client)
        response = client.post("/v1/compare", json=ROWS)
        assert response.status_code == 503 and TEACHER in response.json()["error"]
        assert client.post("/v1/classify", json=ROWS).json()["model"] == STUDENT


def _leaks(text: str, repo: Path) -> list[str]:
    """What an error body must not show: the repository's path, a sha256, or a card's raw input."""
    return [leak for leak in (str(repo), *re.findall(r"[0-9a-f]{64}", text), "input_value") if leak in text]


def test_error_bodies_name_the_model_and_reason_not_paths_or_contents(
    model_repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    add_model(model_repo, "tampered", mlp_student(seed=5), "student", teacher=TEACHER).write_bytes(b"x" * 100)
    broken = add_model(model_repo, "broken", mlp_student(seed=7), "student", teacher=TEACHER)
    broken.write_bytes(b"not an onnx file")
    write_card(model_repo, make_card("broken", "student", broken, teacher=TEACHER))
    (model_repo / "garbled").mkdir()
    secret = {"name": "garbled", "role": "student", "api_key": "s3cr3t-value", "labels": "oops"}
    card_path(model_repo, "garbled").write_text(json.dumps(secret))
    (model_repo / "not-json").mkdir()
    card_path(model_repo, "not-json").write_text("s3cr3t-value garbage")
    settings = settings_for(model_repo, student=STUDENT)
    with caplog.at_level(logging.ERROR), TestClient(create_app(settings)) as client:
        wait_loaded(client)
        for name, cause in (("tampered", "sha256"), ("broken", "cannot load"), ("garbled", "labels"),
                            ("not-json", "config.json")):  # fmt: skip
            for response in (client.get(f"/v2/models/{name}/ready"), infer(client, name)):
                error = response.json()["error"]
                assert response.status_code == 503 and name in error and cause in error, error
                assert "s3cr3t" not in error and not _leaks(error, model_repo), error
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert str(model_repo) in logged and sha256_file(model_path(model_repo, "tampered", 1)) in logged


def test_the_failed_models_are_listed_when_nothing_can_be_served(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    add_model(repo, "only", mlp_student(), "student", teacher=TEACHER).write_bytes(b"tampered")
    with TestClient(create_app(settings_for(repo))) as client:
        wait_loaded(client)
        response = client.get("/v2/health/ready")
        assert response.status_code == 503 and "'only'" in response.json()["error"]
        assert not _leaks(response.json()["error"], repo)
