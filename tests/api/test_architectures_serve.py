"""Every architecture of the training tables, exported and carded by the training side, is served: the service's
v2 answer for each equals PyTorch's logits, and an ensemble teacher (its card lists its members) answers as the
average of its members, on v2 and on the friendly route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from servers import wait_ready
from torch import nn

from distill_training.config import ExportConfig, StudentConfig, TeacherConfig
from distill_training.data import Dataset
from distill_training.export import TEACHER_METHOD, publish
from distill_training.nets import ENSEMBLE, STUDENTS, TEACHERS, Ensemble
from distill_training.train import build_student, build_teacher
from modelrepo.card import Ensemble as EnsembleCard
from modelrepo.card import EnsembleMember
from modelrepo.dataset import FASHION_MNIST_LABELS
from service.app import create_app
from service.settings import Settings

EXPORT = ExportConfig(validate_images=16)
X = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def random_data() -> Dataset:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 1, 28, 28, generator=gen), torch.randint(0, 10, (32,), generator=gen)
    return Dataset(x, y, x, y, x, y, [0.286], [0.353], FASHION_MNIST_LABELS, "0" * 64)


def teacher_net(architecture: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_teacher(TeacherConfig(architecture=architecture, width=4, hidden=8), random_data()).eval()


def student_net(architecture: str) -> nn.Module:
    torch.manual_seed(0)
    cfg = StudentConfig(architecture=architecture, hidden=(8,), channels=(4, 8), width=4, depth=1)
    return build_student(cfg, random_data()).eval()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The teachers of every architecture, an ensemble of them, and every student architecture."""
    repo, data = tmp_path_factory.mktemp("models"), random_data()
    common = {"source_sha256": "0" * 64, "config": {}}
    members = []
    for i, architecture in enumerate(TEACHERS):
        pub = publish(
            teacher_net(architecture, i),
            data,
            EXPORT,
            repo=repo,
            name=f"teacher-{architecture}",
            role="teacher",
            method=TEACHER_METHOD,
            architecture=architecture,
            teacher=None,
            **common,
        )
        r = pub.record
        members.append(
            EnsembleMember(
                name=pub.card.name,
                architecture=architecture,
                parameters=r.parameters,
                test_accuracy=r.test_accuracy,
                sha256=r.sha256,
            )
        )
    ensemble = Ensemble([teacher_net(a, i) for i, a in enumerate(TEACHERS)]).eval()
    publish(
        ensemble,
        data,
        EXPORT,
        repo=repo,
        name="teacher-ensemble",
        role="teacher",
        method=TEACHER_METHOD,
        architecture=ENSEMBLE,
        teacher=None,
        ensemble=EnsembleCard(members=members),
        **common,
    )
    for architecture in STUDENTS:
        publish(
            student_net(architecture),
            data,
            EXPORT,
            repo=repo,
            name=f"student-{architecture}",
            role="student",
            method="kd",
            architecture=architecture,
            teacher="teacher-ensemble",
            **common,
        )
    return repo


@pytest.fixture(scope="module")
def served(repo: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(models_dir=repo, intra_op_threads=1, warmup_runs=1))) as client:
        wait_ready(client)
        yield client


def v2_logits(client: TestClient, name: str) -> np.ndarray:
    tensor = {"name": "input", "datatype": "FP32", "shape": list(X.shape), "data": X.reshape(-1).tolist()}
    response = client.post(f"/v2/models/{name}/infer", json={"inputs": [tensor]})
    assert response.status_code == 200, response.text
    out = response.json()["outputs"][0]
    return np.array(out["data"], dtype=np.float32).reshape(out["shape"])


@pytest.mark.parametrize("architecture", STUDENTS)
def test_every_student_architecture_is_served_as_pytorch_computes_it(served: TestClient, architecture: str) -> None:
    with torch.no_grad():
        expected = student_net(architecture)(X).numpy()
    np.testing.assert_allclose(v2_logits(served, f"student-{architecture}"), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("architecture", TEACHERS)
def test_every_teacher_architecture_is_served_as_pytorch_computes_it(served: TestClient, architecture: str) -> None:
    index = list(TEACHERS).index(architecture)
    with torch.no_grad():
        expected = teacher_net(architecture, index)(X).numpy()
    np.testing.assert_allclose(v2_logits(served, f"teacher-{architecture}"), expected, rtol=1e-4, atol=1e-4)


def test_the_served_ensemble_is_the_average_of_its_served_members(served: TestClient) -> None:
    members = [v2_logits(served, f"teacher-{a}") for a in TEACHERS]
    np.testing.assert_allclose(v2_logits(served, "teacher-ensemble"), np.mean(members, axis=0), rtol=1e-4, atol=1e-4)


def test_the_friendly_route_classifies_raw_pixels_with_the_ensemble(served: TestClient) -> None:
    rows = np.clip(X.numpy().reshape(3, -1) * 80 + 120, 0, 255).round().tolist()
    response = served.post("/v1/classify", params={"model": "teacher-ensemble"}, json={"inputs": rows})
    assert response.status_code == 200, response.text
    assert [p["label"] in FASHION_MNIST_LABELS for p in response.json()["predictions"]] == [True] * 3
