"""Every Prometheus metric of the service, on an injected registry. Names, labels and base units are fixed:
dashboards, alerts and the benchmarks read them as they are.

With several worker processes (`service.workers`) every process writes its values to files in a shared folder
(prometheus-client multiprocess mode) and a scrape sums them; the card gauges take the largest value instead,
since every worker loads the same models.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from modelrepo.card import ModelCard

# From 10 us to 10 s: a student's run takes tens of microseconds, a queued teacher request seconds.
LATENCY_BUCKETS = (
    1e-5, 2.5e-5, 5e-5, 7.5e-5, 1e-4, 2.5e-4, 5e-4, 7.5e-4, 1e-3, 2.5e-3, 5e-3, 7.5e-3,
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True)
class ModelMetrics:
    """The label-bound children one model's batcher updates on its hot path."""

    queue: Histogram
    batch_size: Histogram
    inference: Histogram
    success: Counter
    error: Counter
    rejected: Counter


class Metrics:
    """The metric families; build one per app on its own registry."""

    def __init__(self, registry: CollectorRegistry, multiprocess_dir: Path | None = None) -> None:
        self.registry = registry
        self.multiprocess_dir = multiprocess_dir
        self.inference_duration = Histogram(
            "distill_inference_duration_seconds", "Model compute only (onnxruntime run)",
            ["model", "role"], buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.request_duration = Histogram(
            "distill_request_duration_seconds", "Whole request, parse to response",
            ["endpoint", "model"], buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.requests_shed = Counter(
            "distill_requests_shed_total", "Requests answered 503 at once: too many already in flight",
            ["endpoint"], registry=registry,
        )  # fmt: skip
        self.connections_closed = Counter(
            "distill_connections_closed_total", "Connections the server closed or refused, by reason "
            "(idle_timeout, header_timeout, body_timeout, evicted, refused, accept_failed)",
            ["reason"], registry=registry,
        )  # fmt: skip
        self.queue_duration = Histogram(
            "distill_queue_duration_seconds", "Time waiting in the batcher",
            ["model"], buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.batch_size = Histogram(
            "distill_batch_size", "Rows per onnxruntime run", ["model"], buckets=BATCH_BUCKETS, registry=registry
        )
        self.inference_requests = Counter(
            "distill_inference_requests_total", "Requests that reached a model's batcher, by outcome",
            ["model", "role", "outcome"], registry=registry,
        )  # fmt: skip
        self.predictions_labeled = Counter(
            "distill_predictions_labeled_total", "Predictions whose request carried the true label",
            ["model"], registry=registry,
        )  # fmt: skip
        self.predictions_correct = Counter(
            "distill_predictions_correct_total", "Labeled predictions that were correct", ["model"], registry=registry
        )
        self.agreement = Counter(
            "distill_agreement_total", "Student/teacher agreement on the same row (compare, cascade)",
            ["student", "teacher", "outcome"], registry=registry,
        )  # fmt: skip
        self.cascade = Counter(
            "distill_cascade_total", "Cascade rows answered by the student or fallen back to the teacher",
            ["outcome"], registry=registry,
        )  # fmt: skip
        self.model_info = Gauge(
            "distill_model_info",
            "What is loaded (always 1)",
            ["model", "role", "version", "teacher"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.model_eval_accuracy = Gauge(
            "distill_model_eval_accuracy", "Test accuracy measured at export (card)", ["model"], registry=registry,
            multiprocess_mode="livemax",
        )  # fmt: skip
        self.model_parameters = Gauge(
            "distill_model_parameters", "Parameter count (card)", ["model"], registry=registry,
            multiprocess_mode="livemax",
        )  # fmt: skip
        self.model_size_bytes = Gauge(
            "distill_model_size_bytes", "Size of model.onnx (card)", ["model"], registry=registry,
            multiprocess_mode="livemax",
        )  # fmt: skip
        self._request_children: dict[tuple[str, str], Histogram] = {}  # `labels()` costs a lock and a lookup

    def exposition(self) -> bytes:
        """The text format of a scrape: this registry, or the totals of every worker process."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()  # fresh per scrape: the collector reads every worker's files each time
        MultiProcessCollector(merged, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        return generate_latest(merged)

    def process_stopped(self) -> None:
        """A stopped worker's card gauges leave the totals; its counters and histograms stay in them."""
        if self.multiprocess_dir is not None:
            mark_process_dead(os.getpid(), str(self.multiprocess_dir))  # type: ignore[no-untyped-call]

    def for_model(self, model: str, role: str) -> ModelMetrics:
        requests = self.inference_requests
        return ModelMetrics(
            queue=self.queue_duration.labels(model),
            batch_size=self.batch_size.labels(model),
            inference=self.inference_duration.labels(model, role),
            success=requests.labels(model, role, "success"),
            error=requests.labels(model, role, "error"),
            rejected=requests.labels(model, role, "rejected"),
        )

    def observe_request(self, endpoint: str, model: str, started: float) -> None:
        """Whole-request latency since `started` (perf_counter); `model` must be a served name, "cascade",
        "compare" or "unknown", so that the label's values stay few."""
        child = self._request_children.get((endpoint, model))
        if child is None:
            child = self._request_children[endpoint, model] = self.request_duration.labels(endpoint, model)
        child.observe(time.perf_counter() - started)

    def model_loaded(self, card: ModelCard, version: int) -> None:
        record = card.versions[version]
        self.model_info.labels(card.name, card.role, str(version), card.teacher or "").set(1)
        self.model_eval_accuracy.labels(card.name).set(record.test_accuracy)
        self.model_parameters.labels(card.name).set(record.parameters)
        self.model_size_bytes.labels(card.name).set(record.size_bytes)

    def count_accuracy(self, model: str, predicted: list[int], labels: list[int]) -> None:
        correct = sum(p == t for p, t in zip(predicted, labels, strict=True))
        self.predictions_labeled.labels(model).inc(len(labels))
        self.predictions_correct.labels(model).inc(correct)

    def count_agreement(self, student: str, teacher: str, agree: list[bool]) -> None:
        agreed = sum(agree)
        if agreed:
            self.agreement.labels(student, teacher, "agree").inc(agreed)
        if len(agree) - agreed:
            self.agreement.labels(student, teacher, "disagree").inc(len(agree) - agreed)
