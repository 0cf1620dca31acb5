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
from service.errors import BadRequest, InvalidInput, ServiceError
from service.loading import ServedModel
from service.metrics import Metrics
from service.preprocessing import PixelBatch, preprocessing_key
from service.repository import ModelRegistry
from service.runtimes.base import RunResult, Tensors
from service.shadow import Shadow, ShadowJob

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
    shadow_to: ServedModel | None = None  # the teacher this request is shadowed to (`service.shadow`)

    @property
    def preprocessings(self) -> dict[str, Preprocessing]:
        shadow = () if self.shadow_to is None else (self.shadow_to,)
        return {preprocessing_key(m.card.preprocessing): m.card.preprocessing for m in (*self.models, *shadow)}


class Classifier:
    def __init__(
        self, registry: ModelRegistry, metrics: Metrics, default_threshold: float, run: RunModel, shadow: Shadow
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.shadow = shadow
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
        scores = result.outputs[model.card.output.name]  # (N, K)
        return (softmax(scores) if model.card.output_kind == "logits" else scores), result

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
        shadow = self.shadow
        if shadow.rate and served.name == shadow.student and shadow.sample():
            return Plan(route, (served,), shadow_to=self._shadow_teacher())
        return Plan(route, (served,))

    def _shadow_teacher(self) -> ServedModel | None:
        try:
            return self.registry.by_role("teacher")
        except ServiceError:  # no teacher to shadow to: counted, and the request goes on
            self.shadow.count("failed")
            return None

    def plan_compare(self, a: str | None = None, b: str | None = None) -> Plan:
        """`a` and `b` by name, the student and the teacher by default."""
        if a is None and b is None:
            return Plan(None, self._pair())
        first = self.registry.get(a) if a is not None else self.registry.by_role("student")
        second = self.registry.get(b) if b is not None else self.registry.by_role("teacher")
        return Plan(None, (first, second))

    def _pair(self) -> tuple[ServedModel, ServedModel]:
        return self.registry.by_role("student"), self.registry.by_role("teacher")

    async def classify(self, batch: PixelBatch, plan: Plan) -> tuple[dict[str, Any], ShadowJob | None]:
        """The answer and, for a request sampled for shadow traffic, the job to offer once it is sent."""
        if plan.route == "cascade":
            return await self._cascade(batch, plan), None
        served = plan.models[0]
        probs, result = await self._probs(served, batch)
        self._settle([(served, probs, batch.labels)])
        answer = {
            "model": served.name,
            "route": served.card.role,
            "predictions": predictions(probs, served.card.labels, [served.name] * len(probs)),
            "compute_ms": result.compute_s * 1e3,
        }
        if plan.shadow_to is None:
            return answer, None
        return answer, ShadowJob(served, batch, probs.argmax(axis=1), result.share_s, batch.labels)

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
            self.metrics.count_agreement(student.name, teacher.name, agree, source="cascade")
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
        """Two models on the same rows: `a` then `b` of the plan. Agreement counts in the metrics when one is a
        student and the other a teacher, whose sides the answer also names."""
        first, second = plan.models
        (a_probs, a_result), (b_probs, b_result) = await asyncio.gather(
            self._probs(first, batch), self._probs(second, batch)
        )
        a_labels, b_labels = np.asarray(first.card.labels), np.asarray(second.card.labels)
        agree = (a_labels[a_probs.argmax(axis=1)] == b_labels[b_probs.argmax(axis=1)]).tolist()  # by class name
        self._settle([(first, a_probs, batch.labels), (second, b_probs, batch.labels)])
        sides = {"a": _side(first, a_probs, a_result), "b": _side(second, b_probs, b_result)}
        roles = {first.card.role: "a", second.card.role: "b"}
        if set(roles) == {"student", "teacher"}:
            student, teacher = (first, second) if roles["student"] == "a" else (second, first)
            self.metrics.count_agreement(student.name, teacher.name, agree, source="compare")
            sides |= {role: sides[side] for role, side in roles.items()}
        a_ms, b_ms = sides["a"]["compute_ms"], sides["b"]["compute_ms"]
        return {
            **sides,
            "speedup": b_ms / a_ms if a_ms > 0 else None,
            "agreement": sum(agree) / len(agree),
            "agree": agree,
        }


def _side(model: ServedModel, probs: np.ndarray, result: RunResult) -> dict[str, Any]:
    return {
        "model": model.name,
        "role": model.card.role,
        "predictions": predictions(probs, model.card.labels, [model.name] * len(probs)),
        "compute_ms": result.compute_s * 1e3,
    }
