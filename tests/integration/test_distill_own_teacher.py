"""End to end with a teacher this pipeline did not build, on an image folder: `distill`, then serve both.

The teacher is a small torch CNN trained here for a few seconds, exported the way teachers made elsewhere often
come: NHWC uint8 input, its normalisation inside the graph, softmax probabilities out. So it differs from our own
teacher in layout, datatype, preprocessing and output. The folder holds PNGs of four stripe patterns in two sizes
(neither the teacher's), some greyscale, and three corrupt files. The real CLI distils it (quick profile), the
real service serves the repository, and `/v1/compare` on PNG uploads must answer with both models, each fed what
its card says.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import torch
from foreign_teachers import CORRUPT_FILES, PATTERNS, pattern_folder
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from quick_models import ROOT
from servers import Server, run_service

from modelrepo.layout import card_path, model_path, read_card, sha256_file

pytestmark = pytest.mark.slow

SIZE = 24  # the teacher's input is 24x24 RGB; the folder's images are 32x32 and 40x28
MEAN, STD = 0.45, 0.3  # the teacher's own normalisation, inside its graph


class ForeignTeacher(torch.nn.Module):
    """uint8 (B, H, W, 3) -> cast, / 255, normalise, NCHW -> a small CNN -> softmax probabilities (B, 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(), torch.nn.Linear(32, len(PATTERNS)),
        )  # fmt: skip

    def logits(self, nhwc: torch.Tensor) -> torch.Tensor:
        x = (nhwc.permute(0, 3, 1, 2).float() / 255.0 - MEAN) / STD  # (B, 3, H, W)
        out: torch.Tensor = self.net(x)
        return out

    def forward(self, nhwc: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(nhwc), dim=1)


def readable(folder: Path) -> tuple[list[Path], np.ndarray]:
    """The PNG/JPEG files of `folder/<pattern>/` that Pillow reads, and their class indices."""
    files, labels = [], []
    for index, name in enumerate(PATTERNS):
        for path in sorted((folder / name).iterdir()):
            try:
                with Image.open(path) as image:
                    image.load()
            except OSError:
                continue
            files.append(path)
            labels.append(index)
    return files, np.array(labels)


def pixels(files: list[Path]) -> np.ndarray:
    """(N, 24, 24, 3) uint8: each file as RGB, resized bilinearly, as the teacher takes it."""
    return np.stack(
        [np.asarray(Image.open(f).convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR)) for f in files]
    )


def train_teacher(data: Path, path: Path) -> Path:
    """A few seconds of Adam on the train folder, then the ONNX export (dynamic batch)."""
    files, labels = readable(data / "train")
    x, y = torch.from_numpy(pixels(files)), torch.from_numpy(labels)
    torch.manual_seed(0)
    model = ForeignTeacher()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(6):
        for batch in torch.randperm(len(x)).split(32):
            loss = torch.nn.functional.cross_entropy(model.logits(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes from torch internals
        torch.onnx.export(
            model.eval(), (torch.zeros(2, SIZE, SIZE, 3, dtype=torch.uint8),), str(path), dynamo=True,
            external_data=False, input_names=["pixels"], output_names=["probabilities"],
            dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False,
        )  # fmt: skip
    return path


@dataclass(frozen=True)
class Built:
    root: Path
    data: Path
    teacher: Path
    models: Path
    log: str  # the distill run's stdout and stderr


def distill(root: Path, data: Path, teacher: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "distill_training", "distill", "--teacher-onnx", str(teacher), "--data", str(data),
        "--out", str(root / "models"), "--profile", "quick", "--name", "patterns", "--run-dir", str(root / "run"),
        "--reports", str(root / "reports"),
    ]  # fmt: skip
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=420, check=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("own-teacher")
    data = pattern_folder(root / "patterns", train=60, test=15)
    teacher = train_teacher(data, root / "exported-elsewhere" / "patterns.onnx")
    proc = distill(root, data, teacher)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Built(root, data, teacher, root / "models", proc.stdout + proc.stderr)


@pytest.fixture(scope="module")
def server(built: Built) -> Iterator[Server]:
    with run_service(built.models, built.root / "service.log") as running:
        yield running


def test_the_repository_holds_the_users_teacher_as_it_came_and_a_student(built: Built) -> None:
    teacher, student = (read_card(card_path(built.models, n)) for n in ("patterns-teacher", "patterns-student"))
    assert (teacher.role, teacher.versions[1].architecture, teacher.output_kind) == (
        "teacher",
        "imported",
        "probabilities",
    )
    assert (teacher.input.name, teacher.input.datatype, teacher.input.shape) == ("pixels", "UINT8", [-1, SIZE, SIZE, 3])
    prep = teacher.preprocessing
    assert (prep.layout, prep.channels, prep.scale, prep.mean, prep.std) == ("NHWC", 3, 1.0, [0.0] * 3, [1.0] * 3)
    assert (
        sha256_file(model_path(built.models, teacher.name, 1))
        == sha256_file(built.teacher)
        == teacher.versions[1].sha256
    )
    assert (student.role, student.teacher, student.versions[1].method) == ("student", "patterns-teacher", "kd")
    assert (student.input.datatype, student.input.shape, student.preprocessing.layout) == (
        "FP32",
        [-1, 3, SIZE, SIZE],
        "NCHW",
    )
    assert teacher.labels == student.labels == list(PATTERNS)


def test_the_teachers_card_accuracy_is_onnxruntime_on_the_test_folder(built: Built) -> None:
    files, labels = readable(built.data / "test")
    session = ort.InferenceSession(str(built.teacher), providers=["CPUExecutionProvider"])
    (probs,) = session.run(["probabilities"], {"pixels": pixels(files)})
    accuracy = float((probs.argmax(axis=1) == labels).mean())
    assert read_card(card_path(built.models, "patterns-teacher")).versions[1].test_accuracy == accuracy
    assert accuracy > 0.8  # trained briefly, it must still be a real teacher for the check to mean anything


def test_the_students_card_accuracy_is_measured_on_the_test_folder(built: Built) -> None:
    card = read_card(card_path(built.models, "patterns-student"))
    files, labels = readable(built.data / "test")
    mean, std = np.array(card.preprocessing.mean)[:, None, None], np.array(card.preprocessing.std)[:, None, None]
    x = ((pixels(files).transpose(0, 3, 1, 2) / 255.0 - mean) / std).astype(np.float32)
    session = ort.InferenceSession(str(model_path(built.models, card.name, 1)), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"input": x})
    accuracy = float((logits.argmax(axis=1) == labels).mean())
    assert abs(card.versions[1].test_accuracy - accuracy) <= 1 / len(labels)  # float rounding may flip one tie
    assert accuracy > 1.5 / len(PATTERNS)


def test_corrupt_and_non_image_files_are_skipped_counted_and_listed(built: Built) -> None:
    assert f"skipped {len(CORRUPT_FILES)} of" in built.log
    for name in CORRUPT_FILES:
        assert name in built.log
    assert "ignored 1 file(s) that are not .png/.jpg/.jpeg (e.g. train/notes.txt)" in built.log


def test_compare_on_pngs_answers_with_both_models_each_fed_what_its_card_says(built: Built, server: Server) -> None:
    files, labels = readable(built.data / "test")
    chosen = [int(np.flatnonzero(labels == k)[4]) for k in range(len(PATTERNS))]  # one a class, some greyscale
    uploads = [("files", (files[i].name, files[i].read_bytes(), "image/png")) for i in chosen]
    form = {"labels": ",".join(str(labels[i]) for i in chosen)}
    response = httpx.post(f"{server.url}/v1/compare", files=uploads, data=form, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["teacher"]["model"], body["student"]["model"]) == ("patterns-teacher", "patterns-student")
    session = ort.InferenceSession(str(built.teacher), providers=["CPUExecutionProvider"])
    (expected,) = session.run(["probabilities"], {"pixels": pixels([files[i] for i in chosen])})
    got = [p["probability"] for p in body["teacher"]["predictions"]]
    assert [p["class_index"] for p in body["teacher"]["predictions"]] == expected.argmax(axis=1).tolist()
    np.testing.assert_allclose(got, expected.max(axis=1), rtol=1e-5)  # its probabilities, not softmax of them
    assert len(body["student"]["predictions"]) == len(chosen) and body["speedup"] > 0
    assert len(body["agree"]) == len(chosen)


def metric_samples(url: str) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def test_cascade_and_the_metrics_cover_both_models(built: Built, server: Server) -> None:
    files, _ = readable(built.data / "test")
    upload = [("files", (files[0].name, files[0].read_bytes(), "image/png"))]
    response = httpx.post(f"{server.url}/v1/classify", params={"route": "cascade", "threshold": 1.0}, files=upload)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["answered_by"] == "patterns-teacher"  # no student is ever that sure
    samples = metric_samples(server.url)
    served = {
        labels["model"] for name, labels, value in samples if name == "distill_inference_requests_total" and value
    }
    assert served == {"patterns-teacher", "patterns-student"}
    assert any(
        name == "distill_cascade_total" and labels == {"outcome": "teacher"} and value >= 1
        for name, labels, value in samples
    )
    accuracy = {labels["model"]: value for name, labels, value in samples if name == "distill_model_eval_accuracy"}
    assert (
        accuracy["patterns-teacher"] == read_card(card_path(built.models, "patterns-teacher")).versions[1].test_accuracy
    )


def test_a_second_run_finds_everything_up_to_date(built: Built) -> None:
    outputs = [model_path(built.models, n, 1) for n in ("patterns-teacher", "patterns-student")]
    outputs += sorted((built.root / "run").glob("students/*/model.pt"))
    before = {p: p.stat().st_mtime_ns for p in outputs}
    proc = distill(built.root, built.data, built.teacher)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert "decoding" not in proc.stderr and "teacher logits" not in proc.stderr  # both read from their caches
