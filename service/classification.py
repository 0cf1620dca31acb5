"""Friendly classification: a model or a route (student, teacher, cascade), and teacher/student comparison.

Reaches the models through the data plane's `run`, as v2 inference does; counts online accuracy (rows with
labels), agreement and cascade outcomes, and each model's success, once the whole answer is ready: a compare
whose teacher is overloaded answers 503 and counts nothing for its student either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from modelrepo.card import Preprocessing
from service.errors import BadRequest, InvalidInput
from service.metrics import Metrics
from service.preprocessing import PixelBatch, preprocessing_key
from service.repository import ModelRegistry, ServedModel
from service.runtimes.base import RunResult, Tensors

Route = Literal["student", "teacher", "cascade"]
RunModel = Callable[[ServedModel, Tensors, int], Awaitable[RunResult]]  # `DataPlane.run`
TOP_K = 3


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)  # (N, K)
    e = np.exp(shifted)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def predictions(probs: np.ndarray, labels: list[str], answered_by: list[str]) -> list[dict[str, Any]]:
    out = []
    for row, model in zip(probs, answered_by, strict=True):
        order = np.argsort(row)[::-1][:TOP_K]
        best = int(order[0])
        out.append(
            {
                "label": labels[best],
                "class_index": best,
                "probability": float(row[best]),
                "answered_by": model,
                "top": [{"label": labels[int(i)], "probability": float(row[i])} for i in order],
            }
        )
    return out


@dataclass(frozen=True)
class Plan:
    """The models one friendly request runs, resolved before its body is read: an unknown or down model costs
    no upload, and images are decoded straight to the sizes these models take."""

    route: Route | None  # None: a model by name, or compare
    models: tuple[ServedModel, ...]  # the model, or the student then the teacher
    threshold: float = 0.0  # cascade only

    @property
    def preprocessings(self) -> dict[str, Preprocessing]:
        return {preprocessing_key(m.card.preprocessing): m.card.preprocessing for m in self.models}


class Classifier:
    def __init__(self, registry: ModelRegistry, metrics: Metrics, default_threshold: float, run: RunModel) -> None:
        self.registry = registry
        self.metrics = metrics
        self.default_threshold = default_threshold
        self._run = run

    def label_for(self, model: str | None, route: Route | None) -> str:
        """The `model` label of the request-duration metric: the model's name, or "cascade"."""
        if model is not None:
            return model if self.registry.known(model) else "unknown"
        if route == "cascade":
            return "cascade"
        try:
            return self.registry.by_role(route or "student").name
        except Exception:
            return "unknown"

    async def _probs(self, model: ServedModel, batch: PixelBatch) -> tuple[np.ndarray, RunResult]:
        if batch.labels is not None:
            self._check_labels(model, batch.labels)
        x = batch.tensor(model.card.preprocessing, model.card.input.datatype)  # (N, C, H, W) or (N, H, W, C)
        result = await self._run(model, {model.card.input.name: x}, len(x))
        return softmax(result.outputs[model.card.output.name]), result  # (N, K)

    def _settle(self, answered: list[tuple[ServedModel, np.ndarray, list[int] | None]]) -> None:
        """Count what the client gets: each model's success and, for rows with labels, its online accuracy."""
        for model, probs, labels in answered:
            model.metrics.success.inc()
            if labels is not None:
                self.metrics.count_accuracy(model.name, probs.argmax(axis=1).tolist(), labels)

    @staticmethod
    def _check_labels(model: ServedModel, labels: list[int]) -> None:
        classes = len(model.card.labels)
        if any(not 0 <= v < classes for v in labels):
            raise InvalidInput(f"labels must be class indices 0..{classes - 1} of model {model.name!r}, got {labels}")

    def plan_classify(self, model: str | None, route: Route | None, threshold: float | None) -> Plan:
        """The models a classify request runs; its errors (404, 503) come before its body is read."""
        if model is not None and route is not None:
            raise BadRequest("give either 'model' or 'route', not both")
        if threshold is not None and route != "cascade":
            raise BadRequest("'threshold' applies to route=cascade only")
        if route == "cascade":
            return Plan("cascade", self._pair(), self.default_threshold if threshold is None else threshold)
        served = self.registry.get(model) if model is not None else self.registry.by_role(route or "student")
        return Plan(route, (served,))

    def plan_compare(self) -> Plan:
        return Plan(None, self._pair())

    def _pair(self) -> tuple[ServedModel, ServedModel]:
        return self.registry.by_role("student"), self.registry.by_role("teacher")

    async def classify(self, batch: PixelBatch, plan: Plan) -> dict[str, Any]:
        if plan.route == "cascade":
            return await self._cascade(batch, plan)
        served = plan.models[0]
        probs, result = await self._probs(served, batch)
        self._settle([(served, probs, batch.labels)])
        return {
            "model": served.name,
            "route": served.card.role,
            "predictions": predictions(probs, served.card.labels, [served.name] * len(probs)),
            "compute_ms": result.compute_s * 1e3,
        }

    async def _cascade(self, batch: PixelBatch, plan: Plan) -> dict[str, Any]:
        student, teacher = plan.models
        s_probs, s_result = await self._probs(student, batch)
        fallback = np.flatnonzero(s_probs.max(axis=1) < plan.threshold)  # rows the student is unsure of
        probs, compute_s = s_probs.copy(), s_result.compute_s
        answered_by = [student.name] * len(probs)
        answered = [(student, s_probs, batch.labels)]
        if fallback.size:
            unsure = batch.subset(fallback)
            t_probs, t_result = await self._probs(teacher, unsure)
            probs[fallback] = t_probs
            compute_s += t_result.compute_s
            for i in fallback:
                answered_by[i] = teacher.name
            answered.append((teacher, t_probs, unsure.labels))
            agree = (s_probs[fallback].argmax(axis=1) == t_probs.argmax(axis=1)).tolist()
            self.metrics.count_agreement(student.name, teacher.name, agree)
        self._settle(answered)
        self.metrics.cascade.labels("student").inc(len(probs) - fallback.size)
        self.metrics.cascade.labels("teacher").inc(fallback.size)
        return {
            "model": None,
            "route": "cascade",
            "predictions": predictions(probs, student.card.labels, answered_by),
            "compute_ms": compute_s * 1e3,
        }

    async def compare(self, batch: PixelBatch, plan: Plan) -> dict[str, Any]:
        student, teacher = plan.models
        (s_probs, s_result), (t_probs, t_result) = await asyncio.gather(
            self._probs(student, batch), self._probs(teacher, batch)
        )
        agree = (s_probs.argmax(axis=1) == t_probs.argmax(axis=1)).tolist()
        self._settle([(student, s_probs, batch.labels), (teacher, t_probs, batch.labels)])
        self.metrics.count_agreement(student.name, teacher.name, agree)
        student_ms, teacher_ms = s_result.compute_s * 1e3, t_result.compute_s * 1e3
        return {
            "teacher": {
                "model": teacher.name,
                "predictions": predictions(t_probs, teacher.card.labels, [teacher.name] * len(t_probs)),
                "compute_ms": teacher_ms,
            },
            "student": {
                "model": student.name,
                "predictions": predictions(s_probs, student.card.labels, [student.name] * len(s_probs)),
                "compute_ms": student_ms,
            },
            "speedup": teacher_ms / student_ms if student_ms > 0 else None,
            "agreement": sum(agree) / len(agree),
            "agree": agree,
        }
