"""INT8 copies in the quick build: one `quantization` entry per model tried with exactly the documented keys,
the published copies as models of their own (`<name>-int8`) with a card that validates and a file that runs
and agrees with its FP32 model on real test images, the unpublished ones absent, the INT8 points on the
frontier and the report's section; and the `quantize` command on its own finds them up to date."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from report_keys import QUANTIZATION_KEYS
from servers import run_service

from modelrepo.dataset import load_test_split
from modelrepo.layout import card_path, list_model_dirs, model_path, read_card, sha256_file

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def report_of(folder: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((folder / "reports/distillation.json").read_text())


def test_one_entry_per_model_tried_with_exactly_the_documented_keys(quick_build: Path) -> None:
    entries = report_of(quick_build)["quantization"]
    assert [e["fp32_model"] for e in entries] == ["fmnist-teacher", "fmnist-student"]
    for e in entries:
        assert set(e) == QUANTIZATION_KEYS and e["model"] == f"{e['fp32_model']}-int8"
        if e["method"] == "static-qdq":
            assert e["calibration"] in ("minmax", "entropy", "percentile")
        else:  # an MLP student
            assert (e["method"], e["calibration"]) == ("dynamic", "")
        assert e["drop"] == pytest.approx(e["fp32_accuracy"] - e["int8_accuracy"]) and e["gate"] == 0.005
        if e["drop"] > e["gate"] + 1e-9:
            assert not e["published"]
        fp32 = read_card(card_path(quick_build / "models", e["fp32_model"]))
        assert e["fp32_accuracy"] == fp32.versions[1].test_accuracy


def test_published_copies_are_models_of_their_own_and_agree_with_fp32_on_real_images(quick_build: Path) -> None:
    repo, entries = quick_build / "models", report_of(quick_build)["quantization"]
    published = [e for e in entries if e["published"]]
    assert published, entries  # on these nets the gate has passed with room to spare (see the report)
    fp32_names = {e["fp32_model"] for e in entries}
    assert {p.name for p in list_model_dirs(repo)} == fp32_names | {e["model"] for e in published}
    images, labels = load_test_split(
        read_card(card_path(repo, "fmnist-student")).versions[1].config["training"]["data"]["data_dir"]
    )
    for e in published:
        card, fp32 = read_card(card_path(repo, e["model"])), read_card(card_path(repo, e["fp32_model"]))
        q, record = card.quantization, card.versions[1]
        assert q is not None and fp32.quantization is None
        assert (q.method, q.calibration, q.fp32_model) == (e["method"], e["calibration"], e["fp32_model"])
        assert (q.fp32_accuracy, q.int8_accuracy, q.max_drop) == (e["fp32_accuracy"], e["int8_accuracy"], e["gate"])
        assert (card.role, card.teacher, card.input, card.preprocessing) == (
            fp32.role,
            fp32.teacher,
            fp32.input,
            fp32.preprocessing,
        )
        path = model_path(repo, card.name, 1)
        assert record.sha256 == sha256_file(path) and record.size_bytes < fp32.versions[1].size_bytes
        assert record.config["validation"]["images"] == len(images)
        pre = card.preprocessing
        x = ((images.astype(np.float32) / 255.0 - pre.mean[0]) / pre.std[0])[:, None]  # (N, 1, 28, 28)
        got, want = argmax(path, x), argmax(model_path(repo, fp32.name, 1), x)
        assert (got == want).mean() == pytest.approx(record.config["validation"]["agreement"], abs=2e-3)
        assert (got == labels).mean() == pytest.approx(record.test_accuracy, abs=2e-3)


def argmax(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate(
        [session.run(["logits"], {"input": x[i : i + 1000]})[0].argmax(1) for i in range(0, len(x), 1000)]
    )


def test_int8_points_on_the_frontier_and_in_the_report(quick_build: Path) -> None:
    payload = report_of(quick_build)
    int8 = {e["role"]: e for e in payload["frontier"] if e["role"].endswith("-int8")}
    assert set(int8) == {"teacher-int8", "student-int8"}
    for entry, measured in zip(payload["quantization"], payload["quantization_measured"], strict=True):
        point = int8[f"{measured['role']}-int8"]
        assert (point["name"], point["exported"]) == (entry["model"], entry["published"])
        assert (
            point["test_accuracy"] == entry["int8_accuracy"] and point["latency_us"] == measured["int8_speed"]["p50_us"]
        )
        assert measured["int8_speed"]["images_per_s"] > 0 and measured["int8_speed"]["size_bytes"] > 0
    text = (quick_build / "reports/distillation.md").read_text()
    assert "## INT8 copies" in text and "**The rule**" in text and "images/s per core" in text


def quantize(folder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "distill_training", "quantize", "--profile", "quick", "--out", str(folder / "models"),
           "--run-dir", str(folder / "run"), *extra]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_the_quantize_command_finds_the_copies_up_to_date(quick_build: Path) -> None:
    repo = quick_build / "models"
    copies = [model_path(repo, e["model"], 1) for e in report_of(quick_build)["quantization"] if e["published"]]
    before = {p: p.stat().st_mtime_ns for p in copies}
    proc = quantize(quick_build)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fmnist-teacher-int8: static-qdq" in proc.stdout and "fmnist-student-int8: " in proc.stdout
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_a_stricter_gate_withdraws_the_copies_it_refuses(quick_build: Path, tmp_path: Path) -> None:
    """The same copies held to a gate of 0: those that lost any accuracy are refused, say so, and leave the
    served repository (an earlier run installed them); the rest stay."""
    folder = tmp_path / "quick"
    shutil.copytree(quick_build, folder)
    proc = quantize(folder, "--set", "quantize.max_drop=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for e in report_of(quick_build)["quantization"]:
        trial = json.loads((folder / "run/quantized" / f"{e['model']}.json").read_text())["trial"]
        assert trial["int8_accuracy"] == e["int8_accuracy"]  # the same copy: made from the same seeded sample
        refused = e["drop"] > 1e-9
        assert trial["decision"]["published"] == (e["published"] and not refused)
        assert (folder / "models" / e["model"]).exists() == trial["decision"]["published"]
        if refused:
            assert f"{e['model']}: " in proc.stdout and "more than the gate allows (0.00)" in proc.stdout


def test_the_real_service_serves_the_int8_copies_and_compares_any_two(quick_build: Path, tmp_path: Path) -> None:
    """uvicorn on the quick build: each INT8 copy is ready and answers the v2 protocol; `/v1/compare?a=&b=`
    compares it with its FP32 model on real test images; the student/teacher pair stays the FP32 models."""
    repo, entries = quick_build / "models", report_of(quick_build)["quantization"]
    published = [e for e in entries if e["published"]]
    assert published
    images, labels = load_test_split(
        read_card(card_path(repo, "fmnist-student")).versions[1].config["training"]["data"]["data_dir"]
    )
    rows = images[:64].reshape(64, -1)  # raw pixels, as a client sends them
    with run_service(repo, tmp_path / "service.log") as server, httpx.Client(base_url=server.url, timeout=30) as http:
        overview = http.get("/v1/models").json()
        assert overview["pair"] == {"student": "fmnist-student", "teacher": "fmnist-teacher"}
        summaries = {m["name"]: m for m in overview["models"]}
        for e in published:
            assert http.get(f"/v2/models/{e['model']}/ready").status_code == 200
            assert summaries[e["model"]]["quantization"]["fp32_model"] == e["fp32_model"]
            x = np.zeros((2, 1, 28, 28), np.float32)
            body = {
                "inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 1, 28, 28], "data": x.ravel().tolist()}]
            }
            answer = http.post(f"/v2/models/{e['model']}/infer", json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["outputs"][0]["shape"] == [2, 10]
            compared = http.post(
                "/v1/compare", params={"a": e["model"], "b": e["fp32_model"]}, json={"inputs": rows.tolist()}
            )
            assert compared.status_code == 200, compared.text
            c = compared.json()
            assert (c["a"]["model"], c["b"]["model"]) == (e["model"], e["fp32_model"])
            assert len(c["agree"]) == 64 and c["agreement"] >= 0.9
            predicted = np.array([p["class_index"] for p in c["a"]["predictions"]])
            assert (predicted == labels[:64]).mean() > 0.5
        unknown = http.post(
            "/v1/compare",
            params={"a": "fmnist-student-int9", "b": "fmnist-student"},
            json={"inputs": rows[:1].tolist()},
        )
        assert unknown.status_code == 404 and "fmnist-student-int9" in unknown.json()["error"]
