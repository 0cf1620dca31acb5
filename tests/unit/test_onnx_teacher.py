"""A teacher brought as an ONNX file, as it comes: what it takes is read from its graph (or given), its outputs
are told apart (logits or probabilities), a fixed batch of 1 runs row by row, and what cannot be used is a clear
error that names the fix."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from foreign_teachers import colour_folder, colour_teacher, save

from distill_training.config import DataConfig, OnnxTeacherConfig, PipelineConfig
from distill_training.data import load_dataset
from distill_training.logits_cache import cached_views, view_count
from distill_training.onnx_teacher import OnnxTeacherError, as_logits, open_teacher, output_kind
from distill_training.onnx_views import ImportedTeacher
from modelrepo.pixels import model_input

NO_SIZE = DataConfig()  # the data leaves every size to the teacher


def teacher(tmp_path: Path, name: str = "teacher.onnx", **variant: object) -> OnnxTeacherConfig:
    return OnnxTeacherConfig(path=str(save(colour_teacher(**variant), tmp_path / name)))


def random_pixels(n: int, size: tuple[int, int] = (8, 8)) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 3, *size)).astype(np.uint8)


def test_an_nhwc_uint8_teacher_is_described_as_it_is(tmp_path: Path) -> None:
    found = open_teacher(teacher(tmp_path, layout="NHWC", uint8=True, size=(10, 12)), NO_SIZE)
    assert (found.input.name, found.input.datatype, found.input.shape) == ("image", "UINT8", [-1, 10, 12, 3])
    prep = found.preprocessing
    assert (prep.layout, prep.height, prep.width, prep.channels) == ("NHWC", 10, 12, 3)
    assert (prep.scale, prep.mean, prep.std) == (1.0, [0.0] * 3, [1.0] * 3)  # raw pixels: it normalises itself
    assert (found.output.name, found.classes, found.parameters) == ("logits", 3, 10)


def test_a_float_teachers_normalisation_comes_from_the_sidecar_and_the_config_wins(tmp_path: Path) -> None:
    cfg = teacher(tmp_path, "net.onnx")
    (tmp_path / "net.json").write_text(json.dumps({"mean": [0.4, 0.5, 0.6], "std": [0.2], "scale": 0.5}))
    prep = open_teacher(cfg, NO_SIZE).preprocessing
    assert (prep.mean, prep.std, prep.scale) == ([0.4, 0.5, 0.6], [0.2] * 3, 0.5)
    flags = OnnxTeacherConfig(path=cfg.path, mean=(0.1,), scale=1.0)
    prep = open_teacher(flags, NO_SIZE).preprocessing
    assert (prep.mean, prep.std, prep.scale) == ([0.1] * 3, [0.2] * 3, 1.0)


def test_probabilities_are_detected_and_become_log_probabilities(tmp_path: Path) -> None:
    x = random_pixels(20)
    logits_scores = open_teacher(teacher(tmp_path, "a.onnx"), NO_SIZE).scores(x, batch_size=8)
    prob_scores = open_teacher(teacher(tmp_path, "b.onnx", probabilities=True), NO_SIZE).scores(x, batch_size=8)
    assert (output_kind(logits_scores), output_kind(prob_scores)) == ("logits", "probabilities")
    recovered = torch.softmax(torch.from_numpy(as_logits(prob_scores, "probabilities")), dim=1).numpy()
    np.testing.assert_allclose(recovered, prob_scores, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(recovered, torch.softmax(torch.from_numpy(logits_scores), dim=1).numpy(), rtol=1e-5)


def test_softmax_outputs_that_underflow_to_zero_stay_finite() -> None:
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    assert output_kind(probs) == "probabilities" and np.isfinite(as_logits(probs, "probabilities")).all()


def test_a_fixed_batch_of_one_runs_row_by_row_with_the_same_scores(tmp_path: Path) -> None:
    x = random_pixels(7)
    dynamic = open_teacher(teacher(tmp_path, "dynamic.onnx"), NO_SIZE)
    fixed = open_teacher(teacher(tmp_path, "one.onnx", batch=1), NO_SIZE)
    assert fixed.one_row_at_a_time and not dynamic.one_row_at_a_time and fixed.input.shape[0] == -1
    np.testing.assert_allclose(fixed.scores(x, batch_size=4), dynamic.scores(x, batch_size=4), rtol=1e-6)


def test_scores_are_those_of_the_graph_on_the_cards_input(tmp_path: Path) -> None:
    found = open_teacher(teacher(tmp_path, layout="NHWC", uint8=True), NO_SIZE)
    x = random_pixels(5)
    nhwc = model_input(x, found.preprocessing, "UINT8")
    assert nhwc.dtype == np.uint8 and nhwc.shape == (5, 8, 8, 3)
    expected = nhwc.astype(np.float32).mean(axis=(1, 2)) / 255 * 10  # the graph: mean colour x 10
    np.testing.assert_allclose(found.scores(x, batch_size=2), expected, rtol=1e-5)


def test_a_dynamic_size_is_taken_from_the_data_and_a_fixed_one_must_agree(tmp_path: Path) -> None:
    open_size = teacher(tmp_path, "open.onnx", size=("h", "w"))
    with pytest.raises(OnnxTeacherError, match=r"leaves its height open.*--size"):
        open_teacher(open_size, NO_SIZE)
    assert open_teacher(open_size, DataConfig(image_size=(16, 20))).input.shape == [-1, 3, 16, 20]
    with pytest.raises(OnnxTeacherError, match="takes height 8, but 16 was asked for"):
        open_teacher(teacher(tmp_path), DataConfig(image_size=(16, 16)))


@pytest.mark.parametrize(
    ("variant", "config", "message"),
    [
        ({"uint8": True, "layout": "NHWC"}, {"mean": (0.5,)}, "takes raw pixels .* drop them"),
        ({"batch": 4}, {}, "fixed batch of 4: export it with a dynamic batch axis"),
        ({"size": (3, 3)}, {}, "cannot tell whether .* NCHW or NHWC: pass --layout"),
        ({}, {"output": "features"}, "no output 'features'; its outputs are \\['logits'\\]"),
        ({}, {"std": (1.0, 2.0)}, "std has 2 values for 3 channels"),
        ({}, {"mean": (float("nan"),)}, "must be finite numbers"),
        ({}, {"std": (0.0,)}, "std values must be positive"),
    ],
)
def test_what_cannot_be_used_is_a_clear_error(
    tmp_path: Path, variant: dict[str, object], config: dict[str, object], message: str
) -> None:
    cfg = OnnxTeacherConfig(path=teacher(tmp_path, **variant).path, **config)
    with pytest.raises(OnnxTeacherError, match=message):
        open_teacher(cfg, NO_SIZE)


@pytest.mark.parametrize("sidecar", ['{"mean": "0.5"}', '{"scale": null}', '{"std": [1, true]}', "[1, 2]", "{mean"])
def test_a_sidecar_that_cannot_be_right_is_a_clear_error(tmp_path: Path, sidecar: str) -> None:
    cfg = teacher(tmp_path, "net.onnx")
    (tmp_path / "net.json").write_text(sidecar)
    with pytest.raises(OnnxTeacherError, match=r"net\.json"):
        open_teacher(cfg, NO_SIZE)


def test_a_file_that_is_not_onnx_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "weights.pt").write_bytes(b"PK\x03\x04 a torch checkpoint, not an ONNX graph")
    with pytest.raises(OnnxTeacherError, match=r"is not an ONNX model onnxruntime can load .* export your classifier"):
        open_teacher(OnnxTeacherConfig(path=str(tmp_path / "weights.pt")), NO_SIZE)
    with pytest.raises(OnnxTeacherError, match="does not exist"):
        open_teacher(OnnxTeacherConfig(path=str(tmp_path / "missing.onnx")), NO_SIZE)


def test_the_views_cache_the_teachers_log_probabilities_keyed_by_its_file(tmp_path: Path) -> None:
    data_cfg = DataConfig(data_dir=str(colour_folder(tmp_path / "data")), image_size=(8, 8), channels=3)
    (tmp_path / "data" / "labels.txt").write_text("red\ngreen\nblue\n")  # the teacher's output order
    data = load_dataset(data_cfg)
    cfg = PipelineConfig(data=data_cfg, onnx_teacher=teacher(tmp_path, probabilities=True))
    imported = ImportedTeacher(cfg, data)
    views = cached_views(cfg, data, imported, tmp_path / "logits")
    n = len(data.train_y)
    assert views.logits.shape == (view_count(cfg), n, 3)  # every view of every training image
    assert imported.facts(views, data.labels) == {"output_kind": "probabilities", "train_accuracy": 1.0}
    assert (views.logits <= 0).all()  # log-probabilities
    pixels = torch.from_numpy(np.ascontiguousarray(data.train_pixels[:, :, :, ::-1]))  # view 1: the mirror images
    torch.testing.assert_close(views.logits[1], imported.logits(pixels))
    again = cached_views(cfg, data, ImportedTeacher(cfg, data), tmp_path / "logits")
    assert again.key == views.key and torch.equal(again.logits, views.logits)
    other = replace(cfg, onnx_teacher=teacher(tmp_path, "other.onnx"))
    assert cached_views(other, data, ImportedTeacher(other, data), tmp_path / "logits").key != views.key
    assert len(list((tmp_path / "logits").glob("*.pt"))) == 2
