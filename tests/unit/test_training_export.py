"""Export validation: a faithful ONNX model passes and is published with a valid card; a tampered one is caught;
the card's method and architecture are names of the training tables."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from distill_training import export
from distill_training.config import ConfigError, ExportConfig
from distill_training.data import Dataset
from distill_training.export import ExportValidationError, export_onnx, publish, session, validate
from distill_training.nets import MLPStudent
from modelrepo.card import Role
from modelrepo.layout import read_card, sha256_file

SHAPE = (1, 8, 8)
CFG = ExportConfig(validate_images=32)


def tiny_dataset() -> Dataset:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, *SHAPE, generator=gen)
    y = torch.randint(0, 3, (64,), generator=gen)
    return Dataset(x, y, x[:16], y[:16], x, y, mean=[0.5], std=[0.25], labels=("a", "b", "c"), fingerprint="0" * 64)


def tiny_student() -> MLPStudent:
    torch.manual_seed(0)
    return MLPStudent(SHAPE, 3, hidden=(16,)).eval()


def tamper(path: Path) -> None:
    """Scale the first weight matrix, as a corrupted or swapped file would."""
    proto = onnx.load(str(path))
    init = next(t for t in proto.graph.initializer if numpy_helper.to_array(t).ndim == 2)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.5, init.name))
    onnx.save(proto, str(path))


def test_exported_model_has_a_dynamic_batch_axis(tmp_path: Path) -> None:
    path = export_onnx(tiny_student(), SHAPE, tmp_path / "m.onnx", opset=CFG.opset)
    sess = session(path)
    assert sess.get_inputs()[0].name == "input" and sess.get_outputs()[0].name == "logits"
    for batch in (1, 5):
        (out,) = sess.run(None, {"input": np.zeros((batch, *SHAPE), np.float32)})
        assert out.shape == (batch, 3)


def test_validation_passes_a_faithful_export(tmp_path: Path) -> None:
    model = tiny_student()
    path = export_onnx(model, SHAPE, tmp_path / "m.onnx", opset=CFG.opset)
    result = validate(path, model, tiny_dataset().test_x[:32], CFG)
    assert result.max_abs_diff < 1e-4 and result.agreement == 1.0


def test_validation_catches_a_tampered_model(tmp_path: Path) -> None:
    model = tiny_student()
    path = export_onnx(model, SHAPE, tmp_path / "m.onnx", opset=CFG.opset)
    tamper(path)
    with pytest.raises(ExportValidationError, match="max abs logit diff"):
        validate(path, model, tiny_dataset().test_x[:32], CFG)


def test_publish_writes_a_valid_card(tmp_path: Path) -> None:
    data, model = tiny_dataset(), tiny_student()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    pub = publish(
        model,
        data,
        CFG,
        repo=tmp_path / "repo",
        name="tiny",
        role="student",
        method="kd",
        architecture="mlp",
        teacher="big",
        source_sha256=sha256_file(tmp_path / "w.pt"),
        config={"k": 1},
    )
    card = read_card(tmp_path / "repo" / "tiny" / "config.json")
    record = card.versions[1]
    assert card.teacher == "big" and card.input.shape == [-1, *SHAPE] and card.output.shape == [-1, 3]
    assert record.sha256 == sha256_file(pub.model_file) and record.parameters == 8 * 8 * 16 + 16 + 16 * 3 + 3
    assert 0.0 <= record.test_accuracy <= 1.0 and record.config["training"] == {"k": 1}
    assert pub.val_accuracy == record.config["val_accuracy"] and 0.0 <= pub.val_accuracy <= 1.0


def test_publish_refuses_a_tampered_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_export = export.export_onnx

    def export_then_tamper(*args: object, **kwargs: object) -> Path:
        path = real_export(*args, **kwargs)  # type: ignore[arg-type]
        tamper(path)
        return path

    monkeypatch.setattr(export, "export_onnx", export_then_tamper)
    data, model = tiny_dataset(), tiny_student()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    with pytest.raises(ExportValidationError):
        publish(
            model,
            data,
            CFG,
            repo=tmp_path / "repo",
            name="tiny",
            role="student",
            method="kd",
            architecture="mlp",
            teacher="big",
            source_sha256=sha256_file(tmp_path / "w.pt"),
            config={},
        )
    assert not list((tmp_path / "repo").rglob("*.onnx")) and not list((tmp_path / "repo").rglob("config.json"))


def test_the_card_records_the_method_and_the_architecture(tmp_path: Path) -> None:
    data, model = tiny_dataset(), tiny_student()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    publish(
        model,
        data,
        CFG,
        repo=tmp_path / "repo",
        name="tiny",
        role="student",
        method="none",
        architecture="mlp",
        teacher="big",
        source_sha256=sha256_file(tmp_path / "w.pt"),
        config={},
    )
    record = read_card(tmp_path / "repo" / "tiny" / "config.json").versions[1]
    assert (record.method, record.architecture) == ("none", "mlp")


@pytest.mark.parametrize(
    ("role", "method", "architecture", "error"),
    [
        ("student", "distil", "mlp", "unknown student method 'distil'; known: kd, dkd, consistent, none"),
        ("student", "kd", "vit", "unknown student architecture 'vit'; known: mlp, cnn, mobilenet"),
        ("teacher", "kd", "conv", "unknown teacher method 'kd'; known: teacher"),
        ("teacher", "teacher", "mlp", "unknown teacher architecture 'mlp'; known: conv, resnet, ensemble"),
    ],
)
def test_publish_refuses_names_its_tables_do_not_hold_before_writing_anything(
    tmp_path: Path, role: Role, method: str, architecture: str, error: str
) -> None:
    data, model = tiny_dataset(), tiny_student()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    with pytest.raises(ConfigError, match=re.escape(error)):
        publish(
            model,
            data,
            CFG,
            repo=tmp_path / "repo",
            name="tiny",
            role=role,
            method=method,
            architecture=architecture,
            teacher="big" if role == "student" else None,
            source_sha256=sha256_file(tmp_path / "w.pt"),
            config={},
        )
    assert not (tmp_path / "repo").exists()
