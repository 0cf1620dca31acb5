"""End to end: the quick profile builds a model repository whose cards validate and whose ONNX models run, with
the whole machinery in miniature (a two-member ensemble teacher, candidates under a latency budget, every
method against the control, a time budget), and a report whose frontier says what was exported.

Trains tiny nets on a subset of Fashion-MNIST once per session (`quick_build`), then checks the repository as
the service would read it, that a second run finds everything up to date and retrains nothing, and that a
latency budget changes the exported student (or fails, naming the fastest candidate) without retraining.
"""

from __future__ import annotations

import json
import shutil
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

FRONTIER_KEYS = {
    "name",
    "role",
    "architecture",
    "method",
    "parameters",
    "val_accuracy",
    "test_accuracy",
    "latency_us",
    "exported",
}


@pytest.fixture
def built(quick_build: Path) -> Path:
    """The session's quick build (tests/conftest.py), shared with the train/serve skew test."""
    return quick_build


def report_of(folder: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((folder / "reports/distillation.json").read_text())


def copy_of(built: Path, tmp_path: Path) -> Path:
    """A copy of the quick build to run the pipeline on again without touching the shared one."""
    folder = tmp_path / "quick"
    shutil.copytree(built, folder)
    return folder


def test_repository_holds_exactly_the_teacher_and_the_student(built: Path) -> None:
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


def test_the_served_teacher_is_the_ensemble_and_its_card_lists_the_members(built: Path) -> None:
    card = read_card(built / "models/fmnist-teacher/config.json")
    assert card.versions[1].architecture == "ensemble" and card.ensemble is not None
    members = card.ensemble.members
    assert [m.name for m in members] == ["fmnist-teacher-member0", "fmnist-teacher-member1"]
    assert card.versions[1].parameters == sum(m.parameters for m in members)
    x = np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32)
    outputs = []
    for m in members:
        member_file = model_path(built / "run/export", m.name, 1)
        assert sha256_file(member_file) == m.sha256
        outputs.append(ort.InferenceSession(str(member_file)).run(None, {"input": x})[0])
    (ensemble,) = ort.InferenceSession(str(model_path(built / "models", card.name, 1))).run(None, {"input": x})
    np.testing.assert_allclose(ensemble, np.mean(outputs, axis=0), rtol=1e-5, atol=1e-5)


def test_onnx_models_run_on_the_same_input(built: Path) -> None:
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    for name in ("fmnist-teacher", "fmnist-student"):
        sess = ort.InferenceSession(str(model_path(built / "models", name, 1)), providers=["CPUExecutionProvider"])
        (logits,) = sess.run(["logits"], {"input": x})
        assert logits.shape == (3, 10) and np.isfinite(logits).all()


def test_the_frontier_lists_every_model_with_the_fields_other_tools_read(built: Path) -> None:
    frontier = report_of(built)["frontier"]
    assert all(set(entry) == FRONTIER_KEYS for entry in frontier)
    roles = [e["role"] for e in frontier]
    assert roles.count("teacher") == 1 and roles.count("member") == 2 and roles.count("control") == 1
    exported = {e["role"]: e for e in frontier if e["exported"]}
    assert set(exported) == {"teacher", "student"}
    student = read_card(built / "models/fmnist-student/config.json")
    assert exported["student"]["name"] == student.name == "fmnist-student"
    assert exported["student"]["test_accuracy"] == student.versions[1].test_accuracy
    plan = json.loads((built / "run/plan.json").read_text())
    searched = {e["architecture"] for e in frontier if e["role"] in ("candidate", "student")}
    assert set(plan["final_students"]["candidates"]) <= searched
    assert all(e["latency_us"] > 0 and e["parameters"] > 0 for e in frontier)


def test_every_method_is_compared_with_the_control_on_the_same_seeds(built: Path) -> None:
    comparison = report_of(built)["comparison"]
    assert set(comparison["methods"]) == {"kd", "dkd", "consistent", "none"}
    assert set(comparison["versus_control"]) == {"kd", "dkd", "consistent"}
    seeds = comparison["seeds"]
    assert all(len(m["test_accuracy"]) == seeds for m in comparison["methods"].values())
    assert comparison["best_method"] in comparison["versus_control"]


def test_the_report_says_what_the_time_budget_measured_and_cut(built: Path) -> None:
    budget = report_of(built)["budget"]
    assert budget["time_budget_min"] > 0 and budget["speeds"]["student_epoch_s"]
    assert isinstance(budget["cuts"], list)
    text = (built / "reports/distillation.md").read_text()
    assert "## Time budget" in text and "What the budget cut" in text and "## Accuracy-latency frontier" in text
    assert (built / "reports/distillation_frontier.png").is_file()


def test_second_run_is_up_to_date(built: Path) -> None:
    weights = [
        *sorted((built / "run/teachers").glob("*/model.pt")),
        *sorted((built / "run/students").glob("*/model.pt")),
    ]
    served = [model_path(built / "models", name, 1) for name in ("fmnist-teacher", "fmnist-student")]
    before = {p: p.stat().st_mtime_ns for p in [*weights, *served]}
    proc = run_pipeline(built)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_the_exported_student_is_the_most_accurate_kd_student_on_validation(built: Path) -> None:
    comparison = json.loads((built / "run" / "comparison.json").read_text())
    selected = read_card(built / "models/fmnist-student/config.json").versions[1].config["training"]["selected"]
    val = comparison["methods"]["kd"]["val_accuracy"]
    assert selected["val_accuracy"] >= max(val)
    if selected["epochs"] == comparison["student"]["epochs"]:  # one of the comparison's seeds, not the search run
        assert selected["seed"] == comparison["methods"]["kd"]["exported_seed"] == val.index(max(val))


def test_a_budget_only_the_smallest_candidate_meets_exports_it(built: Path, tmp_path: Path) -> None:
    folder = copy_of(built, tmp_path)
    searched = [e for e in report_of(folder)["frontier"] if e["role"] in ("candidate", "student")]
    latency = {e["architecture"]: e["latency_us"] for e in searched}
    fastest, second = sorted(latency.values())[:2]
    smallest = min(latency, key=lambda spec: latency[spec])
    trained = sorted((folder / "run/students").glob("*/model.pt"))
    before = {p: p.stat().st_mtime_ns for p in trained}
    proc = run_pipeline(folder, "--latency-budget-us", f"{(fastest + second) / 2:.3f}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in trained} == before  # the search is not trained again
    card = read_card(folder / "models/fmnist-student/config.json")
    assert card.versions[1].config["training"]["candidate"] == smallest
    exported = next(e for e in report_of(folder)["frontier"] if e["exported"] and e["role"] == "student")
    assert exported["architecture"] == smallest and exported["latency_us"] <= (fastest + second) / 2


def test_an_impossible_latency_budget_is_a_clear_error_naming_the_fastest_candidate(
    built: Path, tmp_path: Path
) -> None:
    folder = copy_of(built, tmp_path)
    proc = run_pipeline(folder, "--latency-budget-us", "0.5")
    assert proc.returncode == 2
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("error: no student candidate meets the latency budget of 0.5 µs")
    assert "the fastest" in error and "takes" in error and "Traceback" not in proc.stderr


def test_the_pipeline_writes_real_test_images_with_their_labels_next_to_the_models(built: Path) -> None:
    images, labels = load_test_split()
    index = read_index(built / "models")
    assert [s.class_index for s in index.samples] == list(range(10))
    for sample in index.samples:
        assert labels[sample.test_index] == sample.class_index
        assert sample.label == FASHION_MNIST_LABELS[sample.class_index]
        with Image.open(samples_dir(built / "models") / sample.file) as png:
            assert np.array_equal(np.asarray(png), images[sample.test_index])
