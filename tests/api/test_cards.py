"""Cards written by a newer training run are served: a method, an architecture and fields this service has never
heard of, or a higher schema version, are logged once at load and read past. A platform without a runtime here
fails that model only."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from fastapi.testclient import TestClient
from servers import wait_loaded, wait_ready
from tiny_models import add_model, mlp_student

from modelrepo.card import DEFAULT_PLATFORM, SCHEMA_VERSION, ModelCard
from modelrepo.layout import card_path
from service.app import create_app
from service.runtimes import RUNTIMES
from service.runtimes.base import RunResult, Tensors
from service.settings import Settings, ThreadConfig

STUDENT, TEACHER = "tiny-student", "tiny-teacher"


def rewrite_card(repo: Path, name: str, change: Any) -> None:
    """Edit a card's JSON as a newer writer would have written it (`write_card` refuses unknown fields)."""
    path = card_path(repo, name)
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def infer(client: TestClient, name: str) -> Any:
    x = np.zeros((2, 1, 28, 28), dtype=np.float32)
    tensor = {"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.reshape(-1).tolist()}
    return client.post(f"/v2/models/{name}/infer", json={"inputs": [tensor]})


def assert_served(client: TestClient, name: str) -> None:
    assert client.get(f"/v2/models/{name}/ready").status_code == 200
    response = infer(client, name)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["shape"] == [2, 10]
    meta = client.get(f"/v2/models/{name}").json()
    assert meta["name"] == name and meta["versions"] == ["1"] and meta["platform"] == DEFAULT_PLATFORM
    classified = client.post(f"/v1/classify?model={name}", json={"inputs": [[0] * 784]})
    assert classified.status_code == 200, classified.text


def newer_writer(doc: dict[str, Any]) -> None:
    doc["serving_hints"] = {"scheme": "int8-qdq", "calibration_rows": 512}
    record = doc["versions"]["1"]
    record["method"] = "feature-kd"
    record["architecture"] = "vit-tiny"
    record["teacher_ensemble"] = ["a", "b"]


def test_a_card_from_a_newer_training_run_is_served(
    model_repo: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    rewrite_card(model_repo, STUDENT, newer_writer)
    with caplog.at_level(logging.WARNING, logger="service.repository"), TestClient(create_app(settings)) as client:
        wait_ready(client)
        assert_served(client, STUDENT)
        assert_served(client, TEACHER)
    warnings = [r.getMessage() for r in caplog.records if "does not know" in r.getMessage()]
    assert len(warnings) == 1  # once, at load
    assert STUDENT in warnings[0]
    assert "serving_hints" in warnings[0] and "versions.1.teacher_ensemble" in warnings[0]


def test_a_card_with_a_higher_schema_version_is_served(
    model_repo: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    rewrite_card(model_repo, STUDENT, lambda doc: doc.update(schema_version=SCHEMA_VERSION + 1))
    with caplog.at_level(logging.WARNING, logger="service.repository"), TestClient(create_app(settings)) as client:
        wait_ready(client)
        assert_served(client, STUDENT)
    (warning,) = [r.getMessage() for r in caplog.records if "schema version" in r.getMessage()]
    assert STUDENT in warning and str(SCHEMA_VERSION + 1) in warning


def test_a_platform_without_a_runtime_fails_that_model_only(model_repo: Path, settings: Settings) -> None:
    add_model(model_repo, "other-platform", mlp_student(seed=4), "student", teacher=TEACHER)
    rewrite_card(model_repo, "other-platform", lambda doc: doc.update(platform="tensorrt_plan"))
    with TestClient(create_app(settings)) as client:
        wait_loaded(client)
        response = client.get("/v2/models/other-platform/ready")
        assert response.status_code == 503
        assert "tensorrt_plan" in response.json()["error"] and DEFAULT_PLATFORM in response.json()["error"]
        assert infer(client, "other-platform").status_code == 503
        assert client.get("/v2/health/ready").status_code == 200
        assert_served(client, STUDENT)


def test_the_runtime_table_is_keyed_by_each_runtimes_platform() -> None:
    assert all(runtime.platform == platform for platform, runtime in RUNTIMES.items())
    assert DEFAULT_PLATFORM in RUNTIMES


class ConstantRuntime:
    """A runtime as a newcomer would add one: it answers class 3 for every row."""

    platform: ClassVar[str] = "constant"
    loaded: ClassVar[list[Path]] = []

    @classmethod
    def load(cls, path: Path, card: ModelCard, threads: ThreadConfig) -> ConstantRuntime:
        cls.loaded.append(path)
        return cls()

    def run(self, inputs: Tensors) -> RunResult:
        logits = np.zeros((len(inputs["input"]), 10), dtype=np.float32)
        logits[:, 3] = 1.0
        return RunResult({"logits": logits}, 1e-6)

    def warmup(self, runs: int, max_batch_size: int) -> tuple[float, float]:
        return 1e-6, 1e-6


def test_a_runtime_added_to_the_table_serves_the_models_of_its_platform(
    model_repo: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(RUNTIMES, ConstantRuntime.platform, ConstantRuntime)
    add_model(model_repo, "constant-student", mlp_student(seed=4), "student", teacher=TEACHER)
    rewrite_card(model_repo, "constant-student", lambda doc: doc.update(platform="constant"))
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        assert client.get("/v2/models/constant-student").json()["platform"] == "constant"
        response = infer(client, "constant-student")
        assert response.status_code == 200, response.text
        assert np.argmax(np.reshape(response.json()["outputs"][0]["data"], (2, 10)), axis=1).tolist() == [3, 3]
        classified = client.post("/v1/classify?model=constant-student", json={"inputs": [[0] * 784]})
        assert classified.json()["predictions"][0]["class_index"] == 3
        assert client.get(f"/v2/models/{STUDENT}").json()["platform"] == DEFAULT_PLATFORM
    assert [p.parent.parent.name for p in ConstantRuntime.loaded] == ["constant-student"]  # the checked file
