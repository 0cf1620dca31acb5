"""End to end: the quick profile builds a model repository whose cards validate and whose ONNX models run.

Trains tiny nets on a subset of Fashion-MNIST (about a minute on 2 cores, once per session: `quick_build`), then
checks the repository as the service would read it, and that a second run finds everything up to date and
retrains nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image
from quick_models import run_pipeline

from modelrepo.dataset import FASHION_MNIST_LABELS, load_test_split
from modelrepo.layout import list_model_dirs, model_path, read_card, sha256_file
from modelrepo.samples import read_index, samples_dir

pytestmark = pytest.mark.slow


@pytest.fixture
def built(quick_build: Path) -> Path:
    """The session's quick build (tests/conftest.py), shared with the train/serve skew test."""
    return quick_build


def test_repository_holds_exactly_the_teacher_and_the_kd_student(built: Path) -> None:
    repo = built / "models"
    assert [p.name for p in list_model_dirs(repo)] == ["fmnist-student", "fmnist-teacher"]
    teacher, student = read_card(repo / "fmnist-teacher/config.json"), read_card(repo / "fmnist-student/config.json")
    assert (teacher.role, teacher.versions[1].method) == ("teacher", "teacher")
    assert (student.role, student.teacher, student.versions[1].method) == ("student", "fmnist-teacher", "kd")
    for card in (teacher, student):
        assert card.labels == list(FASHION_MNIST_LABELS)
        assert card.input.name == "input" and card.input.shape == [-1, 1, 28, 28]
        assert card.output.name == "logits" and card.output.shape == [-1, 10]
        record = card.versions[1]
        path = model_path(repo, card.name, 1)
        assert record.sha256 == sha256_file(path) and record.size_bytes == path.stat().st_size
        assert record.test_accuracy > 0.5 and record.config["training"]["profile"] == "quick"
    assert teacher.versions[1].parameters > student.versions[1].parameters


def test_onnx_models_run_on_the_same_input(built: Path) -> None:
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    for name in ("fmnist-teacher", "fmnist-student"):
        sess = ort.InferenceSession(str(model_path(built / "models", name, 1)), providers=["CPUExecutionProvider"])
        (logits,) = sess.run(["logits"], {"input": x})
        assert logits.shape == (3, 10) and np.isfinite(logits).all()


def test_control_student_and_report_live_outside_the_repository(built: Path) -> None:
    control = read_card(built / "run/export/fmnist-control/config.json")
    assert control.versions[1].method == "none"
    report = json.loads((built / "reports/distillation.json").read_text())
    assert [m["label"] for m in report["models"]] == ["teacher", "student", "control"]
    assert (built / "reports/distillation.md").is_file() and (built / "reports/distillation_seeds.png").is_file()


def test_second_run_is_up_to_date(built: Path) -> None:
    weights = [built / "run/teacher/model.pt", *sorted((built / "run/students").glob("*/model.pt"))]
    before = {p: p.stat().st_mtime_ns for p in [*weights, model_path(built / "models", "fmnist-student", 1)]}
    proc = run_pipeline(built)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_the_exported_student_is_the_best_kd_seed_on_validation(built: Path) -> None:
    comparison = json.loads((built / "run" / "comparison.json").read_text())
    selected = read_card(built / "models/fmnist-student/config.json").versions[1].config["training"]["selected"]
    val = comparison["kd"]["val_accuracy"]
    assert selected["seed"] == comparison["kd"]["exported_seed"] == val.index(max(val))
    assert selected["val_accuracy"] == max(val)


def test_cards_and_report_record_the_method_and_architecture_of_each_model(built: Path) -> None:
    made = [("teacher", "conv"), ("kd", "mlp"), ("none", "mlp")]  # teacher, KD student, control
    folders = ["models/fmnist-teacher", "models/fmnist-student", "run/export/fmnist-control"]
    records = [read_card(built / folder / "config.json").versions[1] for folder in folders]
    assert [(r.method, r.architecture) for r in records] == made
    report = json.loads((built / "reports/distillation.json").read_text())
    assert [(m["method"], m["architecture"]) for m in report["models"]] == made


def test_the_pipeline_writes_real_test_images_with_their_labels_next_to_the_models(built: Path) -> None:
    images, labels = load_test_split()
    index = read_index(built / "models")
    assert [s.class_index for s in index.samples] == list(range(10))
    for sample in index.samples:
        assert labels[sample.test_index] == sample.class_index
        assert sample.label == FASHION_MNIST_LABELS[sample.class_index]
        with Image.open(samples_dir(built / "models") / sample.file) as png:
            assert np.array_equal(np.asarray(png), images[sample.test_index])
