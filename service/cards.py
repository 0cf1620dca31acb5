"""The served models' cards in plain words (`GET /v1/models`): what a person deciding on a student reads.

Method and architecture names come from the training side's tables, which grow; a name this table does not know
is shown as it is, never refused.
"""

from __future__ import annotations

from typing import Any

from service.errors import ServiceError
from service.loading import ServedModel
from service.pairing import RouteRole
from service.repository import ModelRegistry

METHOD_WORDS = {
    "teacher": "trained on the labels (the teacher)",
    "kd": "Hinton distillation: its teacher's soft targets at a temperature, mixed with the labels",
    "none": "trained on the labels only (the control of a distillation)",
    "dkd": "decoupled distillation: its teacher's target and non-target classes weighted apart, with the labels",
    "consistent": "consistent teaching: matching its teacher on every augmented view it is shown, no labels",
}
ARCHITECTURE_WORDS = {
    "mlp": "multilayer perceptron",
    "conv": "convolutional network",
    "cnn": "convolutional network",
    "mobilenet": "MobileNet-style depthwise-separable convolutional network",
    "resnet": "residual convolutional network",
    "ensemble": "ensemble of several networks in one graph",
    "imported": "brought as an ONNX file (not trained here)",
    "unknown": "not recorded (an older card)",
}


def _kd_settings(config: dict[str, Any]) -> str:
    """` (T=2, weight 0.5)` from the training config a card records, or "" when it holds no such fields."""
    training = config.get("training")
    student = training.get("student") if isinstance(training, dict) else None
    if not isinstance(student, dict) or not isinstance(student.get("temperature"), int | float):
        return ""
    weight = student.get("kd_weight")
    return f" (T={student['temperature']:g}" + (f", weight {weight:g}" if isinstance(weight, int | float) else "") + ")"


def method_words(method: str, config: dict[str, Any]) -> str:
    words = METHOD_WORDS.get(method, f"trained by the method {method!r}")
    return words + (_kd_settings(config) if method == "kd" else "")


def _summary(model: ServedModel) -> str:
    card, record = model.card, model.card.versions[model.version]
    made = f"distilled from {card.teacher}" if card.role == "student" else "the teacher"
    if card.quantization is not None:
        made = f"INT8 copy of {card.quantization.fp32_model}"
    arch = ARCHITECTURE_WORDS.get(record.architecture, record.architecture)
    return (
        f"{card.name} ({made}): a {arch} of {record.parameters:,} parameters, {record.size_bytes / 1024:,.0f} KiB, "
        f"{record.test_accuracy:.2%} accurate on the test set at export"
    )


def describe(model: ServedModel) -> dict[str, Any]:
    card, record = model.card, model.card.versions[model.version]
    return {
        "name": card.name,
        "role": card.role,
        "teacher": card.teacher,
        "version": model.version,
        "platform": card.platform,
        "labels": card.labels,
        "input": {"name": card.input.name, "datatype": card.input.datatype, "shape": card.input.shape},
        "test_accuracy": record.test_accuracy,
        "parameters": record.parameters,
        "size_bytes": record.size_bytes,
        "method": record.method,
        "method_words": method_words(record.method, record.config),
        "architecture": record.architecture,
        "architecture_words": ARCHITECTURE_WORDS.get(record.architecture, record.architecture),
        "quantization": None if card.quantization is None else card.quantization.model_dump(),
        "ensemble": None if card.ensemble is None else [m.name for m in card.ensemble.members],
        "created": record.created,
        "summary": _summary(model),
    }


def _pair_member(registry: ModelRegistry, role: RouteRole) -> str | None:
    try:
        return registry.by_role(role).name
    except ServiceError:  # none served with that role, or the configured one failed: the page offers the others
        return None


def overview(registry: ModelRegistry, cascade_threshold: float) -> dict[str, Any]:
    """Every served model's card, the student/teacher pair the routes use, and the models that failed."""
    return {
        "models": [describe(registry.models[name]) for name in sorted(registry.models)],
        "pair": {"student": _pair_member(registry, "student"), "teacher": _pair_member(registry, "teacher")},
        "cascade_threshold": cascade_threshold,
        "loaded": registry.loaded,
        "loading": sorted(s.name for s in registry.with_status("loading")),
        "failed": {s.name: s.reason for s in sorted(registry.with_status("failed"), key=lambda s: s.name)},
    }
