"""A teacher exported with a fixed batch of 1 (as many exporters leave it) and ending in softmax: `distill` runs it
row by row, its card says batch -1 and probabilities, and the real service serves batches of it row by row."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from foreign_teachers import COLOURS, colour_folder, colour_teacher, save
from PIL import Image
from servers import run_service

from distill_training.__main__ import main
from modelrepo.layout import card_path, read_card

pytestmark = pytest.mark.slow


def test_a_teacher_with_a_fixed_batch_of_one_is_distilled_and_served(tmp_path: Path) -> None:
    data = colour_folder(tmp_path / "colours")
    (data / "labels.txt").write_text("\n".join(COLOURS) + "\n")  # the teacher's output order
    teacher = save(colour_teacher(layout="NHWC", uint8=True, probabilities=True, batch=1), tmp_path / "t.onnx")
    argv = [
        "distill", "--teacher-onnx", str(teacher), "--data", str(data), "--out", str(tmp_path / "models"),
        "--run-dir", str(tmp_path / "run"), "--reports", str(tmp_path / "reports"), "--profile", "quick",
    ]  # fmt: skip
    assert main(argv) == 0
    card = read_card(card_path(tmp_path / "models", "colours-teacher"))
    assert (card.input.shape, card.output_kind, card.versions[1].test_accuracy) == ([-1, 8, 8, 3], "probabilities", 1.0)

    files = [data / "test" / colour / "0.png" for colour in COLOURS]
    session = ort.InferenceSession(str(teacher), providers=["CPUExecutionProvider"])
    rows = [np.asarray(Image.open(f).convert("RGB").resize((8, 8), Image.Resampling.BILINEAR))[None] for f in files]
    expected = np.concatenate([session.run(["probs"], {"image": row})[0] for row in rows])  # (3, 3), one at a time
    with run_service(tmp_path / "models", tmp_path / "service.log") as server:
        uploads = [("files", (f.name, f.read_bytes(), "image/png")) for f in files]
        response = httpx.post(f"{server.url}/v1/classify", params={"route": "teacher"}, files=uploads, timeout=30)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["label"] for p in predictions] == list(COLOURS)
    np.testing.assert_allclose([p["probability"] for p in predictions], expected.max(axis=1), rtol=1e-5)
