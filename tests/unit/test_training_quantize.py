"""INT8 copies: static QDQ calibrated on real training images keeps a trained CNN's accuracy and agrees with it
on real test images; calibrated on constant images it collapses and the gate refuses it; dynamic quantization
suits an MLP; the gate and the publishing rule; the report entry's keys; the INT8 card."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from report_keys import QUANTIZATION_KEYS
from tiers import require
from torch import nn

from distill_training.config import ConfigError, DataConfig, ExportConfig, QuantizeConfig, load_config
from distill_training.context import Context, check_names
from distill_training.data import Dataset, load_dataset
from distill_training.export import Published, export_onnx, publish
from distill_training.int8 import Speed, Trial, decide, measure_speeds, trial_of, write_int8
from distill_training.int8_copies import quantize_models
from distill_training.nets import CNNStudent, MLPStudent
from distill_training.quantize import (
    DYNAMIC,
    STATIC,
    Quantized,
    best_copy,
    calibration_sample,
    method_for,
    quantize_file,
    split_of,
)
from distill_training.report_int8 import quantization_section
from modelrepo.dataset import DEFAULT_DATA_DIR
from modelrepo.layout import card_path, read_card, sha256_file

CALIBRATIONS = ("minmax", "percentile")


@pytest.fixture(scope="module")
def data() -> Dataset:
    require(Path(DEFAULT_DATA_DIR).is_dir(), f"Fashion-MNIST not installed at {DEFAULT_DATA_DIR}")
    return load_dataset(DataConfig(val_size=500, train_limit=4000))


def _trained(model: nn.Module, data: Dataset, epochs: int = 2) -> nn.Module:
    """A few seconds of training: far from the best net, but one whose accuracy quantization could lose."""
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for i in range(0, len(data.train_x), 128):
            loss = F.cross_entropy(model(data.train_x[i : i + 128]), data.train_y[i : i + 128])
            optimizer.zero_grad()
            torch.autograd.backward(loss)
            optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def cnn(data: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Published:
    repo = tmp_path_factory.mktemp("repo")
    model = _trained(CNNStudent(data.image_shape, 10, channels=(8, 16)), data)
    return publish(
        model,
        data,
        ExportConfig(validate_images=128),
        repo=repo,
        name="tiny-student",
        role="student",
        method="none",
        architecture="cnn",
        teacher="tiny-teacher",
        source_sha256="0" * 64,
        config={},
    )


def _copy(fp32: Published, data: Dataset, folder: Path, method: str, images: np.ndarray) -> Quantized:
    return best_copy(
        fp32.model_file,
        folder,
        method=method,
        calibrations=CALIBRATIONS,
        images=images,
        val=split_of(fp32.model_file, data.val_x.numpy(), data.val_y.numpy()),
        test=split_of(fp32.model_file, data.test_x.numpy(), data.test_y.numpy()),
    )


SPEED = Speed(p50_us=10.0, p90_us=12.0, images_per_s=1e5, batch=32, size_bytes=4000)
SMALLER = Speed(p50_us=14.0, p90_us=16.0, images_per_s=8e4, batch=32, size_bytes=1500)


def test_static_copy_keeps_accuracy_and_agrees_on_real_test_images(
    cnn: Published, data: Dataset, tmp_path: Path
) -> None:
    images = calibration_sample(data.train_x.numpy(), 256, seed=0)
    copy = _copy(cnn, data, tmp_path, STATIC, images)
    assert copy.calibration in CALIBRATIONS and set(copy.val_accuracy_by_calibration) == set(CALIBRATIONS)
    assert copy.val.accuracy == max(copy.val_accuracy_by_calibration.values())  # chosen on validation
    assert copy.test.images == len(data.test_x) == 10000
    assert copy.test.agreement >= 0.97, copy.test
    assert copy.test.accuracy >= cnn.record.test_accuracy - 0.01
    decision = decide(cnn.record.test_accuracy, copy.test.accuracy, 0.01, SPEED, SMALLER)
    assert decision.published
    assert copy.path.stat().st_size < cnn.model_file.stat().st_size  # int8 weights


def test_gate_refuses_a_copy_calibrated_on_constant_images(cnn: Published, data: Dataset, tmp_path: Path) -> None:
    constant = np.zeros((256, *data.image_shape), np.float32)  # every activation range collapses to a point
    copy = _copy(cnn, data, tmp_path, STATIC, constant)
    assert copy.test.agreement < 0.5
    decision = decide(cnn.record.test_accuracy, copy.test.accuracy, 0.005, SPEED, SMALLER)
    assert not decision.published
    missed = decision.drop - 0.005
    assert missed > 0.2 and f"{missed * 100:.2f} pts more than the gate" in decision.reason


def activation_scales(path: Path) -> dict[str, float]:
    model = onnx.load(str(path))
    arrays = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {name: float(a) for name, a in arrays.items() if name.endswith("_scale") and a.size == 1}


def test_each_calibration_method_sets_its_own_activation_ranges(cnn: Published, data: Dataset, tmp_path: Path) -> None:
    """onnxruntime's entropy calibration with its default bins gives exactly the MinMax ranges; ours must not."""
    images = calibration_sample(data.train_x.numpy(), 256, seed=0)
    scales = {
        c: activation_scales(
            quantize_file(cnn.model_file, tmp_path / f"{c}.onnx", method=STATIC, calibration=c, images=images)
        )
        for c in ("minmax", "entropy", "percentile")
    }
    assert set(scales["minmax"]) == set(scales["entropy"]) == set(scales["percentile"])
    for other in ("entropy", "percentile"):
        differ = [n for n in scales["minmax"] if scales[other][n] != pytest.approx(scales["minmax"][n], rel=1e-3)]
        assert differ, f"{other} calibration set every range as minmax did"
        assert all(scales[other][n] <= scales["minmax"][n] * 1.001 for n in differ)  # both clip the observed range


def test_dynamic_copy_of_an_mlp(data: Dataset, tmp_path: Path) -> None:
    model = _trained(MLPStudent(data.image_shape, 10, hidden=(64,)), data, epochs=1)
    fp32 = export_onnx(model, data.image_shape, tmp_path / "fp32.onnx", opset=18)
    test = split_of(fp32, data.test_x.numpy(), data.test_y.numpy())
    copy = best_copy(
        fp32,
        tmp_path / "int8",
        method=method_for("mlp"),
        calibrations=CALIBRATIONS,
        images=np.empty(0, np.float32),
        val=test,
        test=test,
    )
    assert (copy.method, copy.calibration, copy.val_accuracy_by_calibration) == (DYNAMIC, "", {})
    assert copy.test.agreement >= 0.97
    assert copy.path.stat().st_size < fp32.stat().st_size


def test_gate_boundary_and_the_faster_or_smaller_rule() -> None:
    at_gate = decide(0.90, 0.895, 0.005, SPEED, SMALLER)
    assert at_gate.published and at_gate.smaller and not at_gate.faster and "1.00x" not in at_gate.reason
    assert not decide(0.90, 0.8949, 0.005, SPEED, SMALLER).published
    neither = decide(0.90, 0.90, 0.005, SPEED, Speed(11.0, 13.0, 9e4, 32, 4000))
    assert not neither.published and "slower" in neither.reason
    better = decide(0.90, 0.91, 0.005, SPEED, Speed(5.0, 6.0, 2e5, 32, 4000))
    assert better.published and better.drop < 0 and "2.00x faster" in better.reason


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("quantize.calibrations", "minmax,kl", r"quantize\.calibrations must name some of minmax, entropy, percentile"),
        ("quantize.max_drop", "5", r"quantize\.max_drop is a fraction"),
        ("quantize.calibration_images", "0", r"quantize\.calibration_images must be at least 1"),
    ],
)
def test_bad_quantize_settings_fail_before_any_training(setting: str, value: str, says: str) -> None:
    check_names(load_config("quick"))
    with pytest.raises(ConfigError, match=says):
        check_names(load_config("quick", overrides={setting: value}))


def test_the_cli_says_which_setting_is_wrong_and_exits_2() -> None:
    cmd = [sys.executable, "-m", "distill_training", "plan", "--profile", "quick", "--set", "quantize.calibrations=kl"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "quantize.calibrations must name some of" in proc.stderr


def test_architectures_choose_the_method() -> None:
    assert method_for("cnn") == method_for("ensemble") == method_for("mobilenet") == STATIC
    assert method_for("mlp") == DYNAMIC


def test_int8_card_validates_and_the_entry_has_the_issue_keys(cnn: Published, data: Dataset, tmp_path: Path) -> None:
    copy = _copy(cnn, data, tmp_path / "work", STATIC, calibration_sample(data.train_x.numpy(), 128, seed=0))
    speeds = measure_speeds(
        {"fp32": cnn.model_file, "int8": copy.path}, QuantizeConfig(throughput_calls=5), threads=1, runs=50
    )
    trial = trial_of(cnn, copy, (speeds["fp32"], speeds["int8"]), 0.005)
    assert set(trial.entry()) == QUANTIZATION_KEYS and trial.entry()["model"] == "tiny-student-int8"
    assert Trial.from_json(trial.to_json()) == trial
    pub = write_int8(tmp_path / "repo", cnn, trial, copy.path, {"max_drop": 0.005})
    card = read_card(card_path(tmp_path / "repo", "tiny-student-int8"))
    assert card == pub.card and card.quantization is not None
    assert (card.role, card.teacher, card.quantization.fp32_model) == ("student", "tiny-teacher", "tiny-student")
    assert card.quantization.int8_accuracy == card.versions[1].test_accuracy == trial.int8_accuracy
    assert card.versions[1].sha256 == sha256_file(pub.model_file)
    assert (card.input, card.labels, card.preprocessing) == (cnn.card.input, cnn.card.labels, cnn.card.preprocessing)


def test_with_quantization_off_a_copy_stays_only_while_its_fp32_model_is_unchanged(
    cnn: Published, data: Dataset, tmp_path: Path
) -> None:
    copy = _copy(cnn, data, tmp_path / "work", STATIC, calibration_sample(data.train_x.numpy(), 64, seed=0))
    trial = trial_of(cnn, copy, (SPEED, SMALLER), 0.005)
    repo = tmp_path / "repo"
    write_int8(repo, cnn, trial, copy.path, {})
    cfg = load_config("quick", overrides={"quantize.enabled": "false"})
    ctx = Context(cfg, data, {})
    assert quantize_models(ctx, [cnn], repo) == []
    assert card_path(repo, "tiny-student-int8").is_file()  # made from this very FP32 file
    record = cnn.record.model_copy(update={"sha256": "f" * 64})
    retrained = Published(cnn.card.model_copy(update={"versions": {1: record}}), cnn.model_file, cnn.validation)
    assert quantize_models(ctx, [retrained], repo) == []
    assert not (repo / "tiny-student-int8").exists()  # a copy of a model no longer served is not served either


def _trial(fp32_model: str, role: str, int8_accuracy: float, int8: Speed) -> Trial:
    decision = decide(0.90, int8_accuracy, 0.005, SPEED, int8)
    return Trial(
        f"{fp32_model}-int8", fp32_model, role, "cnn", STATIC, "percentile", 0.90, int8_accuracy, 0.91, 0.905,
        {"minmax": 0.904, "percentile": 0.905}, 0.99, 2.5, 10000, 1234, SPEED, int8, decision, "Test CPU", [], 1.0,
    )  # fmt: skip


def test_the_report_section_says_what_the_figures_say() -> None:
    faster = Speed(p50_us=4.0, p90_us=5.0, images_per_s=3e5, batch=32, size_bytes=1000)
    trials = [_trial("t", "teacher", 0.899, faster), _trial("s", "student", 0.88, SMALLER)]
    text = "\n".join(quantization_section([t.to_json() for t in trials]))
    assert "| `t-int8` | static-qdq | minmax 90.40%, **percentile** 90.50% | 90.00% | 89.90% | +0.10 pts" in text
    assert "| `s-int8` |" in text and "| **no** |" in text
    assert "not published: lost 2.00 pts of test accuracy, 1.50 pts more than the gate allows (0.50)" in text
    assert "faster for some, slower for others than FP32 at batch 1 (2.50x, 0.71x the FP32 speed)" in text
    assert "no int8 dot-product instructions (VNNI, AMX)" in text and "brought as an ONNX file" not in text
    only_student = "\n".join(quantization_section([trials[1].to_json()]))
    assert "brought as an ONNX file (`distill`)" in only_student
    assert quantization_section([]) == ["## INT8 copies", "", "Not tried (`quantize.enabled` is off).", ""]
