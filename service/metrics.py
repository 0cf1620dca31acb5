"""Every Prometheus metric of the service, on an injected registry. Names, labels and base units are fixed:
dashboards, alerts and the benchmarks read them as they are.

With several worker processes (`service.workers`) every process writes its values to files in a shared folder
(prometheus-client multiprocess mode) and a scrape sums them; the card gauges take the largest value instead,
since every worker loads the same models.

CPU time is counted twice over, so that what one request to a model costs can be read live: the whole process
(`distill_process_cpu_seconds_total`; prometheus-client's own `process_cpu_seconds_total` is absent in
multiprocess mode) and each model's onnxruntime runs (`distill_inference_cpu_seconds_total`). A request to a
model costs its model's runs plus an even share of the rest (HTTP, parsing, batching), which costs every
request about the same.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Metric, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from modelrepo.card import ModelCard

# From 10 us to 10 s: a student's run takes tens of microseconds, a queued teacher request seconds.
LATENCY_BUCKETS = (
    1e-5, 2.5e-5, 5e-5, 7.5e-5, 1e-4, 2.5e-4, 5e-4, 7.5e-4, 1e-3, 2.5e-3, 5e-3, 7.5e-3,
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CPU_PUBLISH_EVERY_S = 1.0  # a worker adds its process CPU to its counter at most this often while it serves

In = TypeVar("In")
Out = TypeVar("Out")


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
            "distill_agreement_total", "Student/teacher agreement on the same row, by where it was measured "
            "(source: compare, cascade, shadow)",
            ["student", "teacher", "source", "outcome"], registry=registry,
        )  # fmt: skip
        self.shadow_requests = Counter(
            "distill_shadow_requests_total", "Student-answered requests sampled for the teacher, by outcome "
            "(compared, queue_full, teacher_busy, failed)",
            ["outcome"], registry=registry,
        )  # fmt: skip
        self.shadow_compute = Histogram(
            "distill_shadow_compute_seconds", "Compute time of shadowed requests, the student's answer and the "
            "teacher's shadow run (role), on the same requests",
            ["student", "teacher", "role"], buckets=LATENCY_BUCKETS, registry=registry,
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
        self.process_cpu = Counter(
            "distill_process_cpu_seconds_total", "CPU time (user + system) of the serving process, summed over workers",
            registry=registry,
        )  # fmt: skip
        self.inference_cpu = Counter(
            "distill_inference_cpu_seconds_total", "CPU time of the model's onnxruntime runs",
            ["model", "role"], registry=registry,
        )  # fmt: skip
        self._request_children: dict[tuple[str, str], Histogram] = {}  # `labels()` costs a lock and a lookup
        self._cpu_published = 0.0  # process CPU seconds already in `process_cpu`
        self._cpu_published_at = -math.inf  # perf_counter of that

    def _scraped(self) -> CollectorRegistry:
        """What a scrape reads: this registry, or the totals of every worker process."""
        self.publish_process_cpu(time.perf_counter())
        if self.multiprocess_dir is None:
            return self.registry
        merged = CollectorRegistry()  # fresh per scrape: the collector reads every worker's files each time
        MultiProcessCollector(merged, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        return merged

    def exposition(self) -> bytes:
        """The text format of a scrape."""
        return generate_latest(self._scraped())

    def families(self) -> list[Metric]:
        """The metric families of a scrape, as `exposition` writes them, without the text in between."""
        return list(self._scraped().collect())

    def publish_process_cpu(self, now: float) -> None:
        """Add the CPU this process used since the last call to `distill_process_cpu_seconds_total`. Called on
        the event loop's thread only (scrapes, finished requests), so no lock."""
        used = time.process_time()
        self.process_cpu.inc(used - self._cpu_published)
        self._cpu_published, self._cpu_published_at = used, now

    def process_stopped(self) -> None:
        """A stopped worker's card gauges leave the totals; its counters and histograms stay in them."""
        self.publish_process_cpu(time.perf_counter())
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
        now = time.perf_counter()
        child.observe(now - started)
        if now - self._cpu_published_at >= CPU_PUBLISH_EVERY_S:  # other workers' scrapes cannot ask this one
            self.publish_process_cpu(now)

    def cpu_counted(self, run: Callable[[In], Out], model: str, role: str, *, inline: bool) -> Callable[[In], Out]:
        """`run` (one onnxruntime run), adding the CPU time each call uses to the model's
        `distill_inference_cpu_seconds_total`. Build it on the event loop's thread.

        On the event loop (`inline`, one intra-op thread) that is the thread's own clock. In a worker thread,
        onnxruntime's intra-op threads work too and cannot be told apart, so a run counts the process's CPU less
        the event loop's over the run; two models in worker threads running at the same moment would each count
        both runs."""
        counter = self.inference_cpu.labels(model, role)
        if inline:

            def on_loop(inputs: In) -> Out:
                start = time.thread_time()
                try:
                    return run(inputs)
                finally:
                    counter.inc(time.thread_time() - start)

            return on_loop
        loop_clock = time.pthread_getcpuclockid(threading.get_ident())

        def off_loop(inputs: In) -> Out:
            start = time.process_time() - time.clock_gettime(loop_clock)
            try:
                return run(inputs)
            finally:
                counter.inc(max(0.0, time.process_time() - time.clock_gettime(loop_clock) - start))

        return off_loop

    def model_loaded(self, card: ModelCard, version: int) -> None:
        record = card.versions[version]
        self.model_info.labels(card.name, card.role, str(version), card.teacher or "").set(1)
        self.model_eval_accuracy.labels(card.name).set(record.test_accuracy)
        self.model_parameters.labels(card.name).set(record.parameters)
        self.model_size_bytes.labels(card.name).set(record.size_bytes)

    def model_unloaded(self, card: ModelCard, version: int) -> None:
        """That version is no longer served: its info series goes (to 0 with several workers, whose files keep
        every value written; the scrape takes the largest over live workers)."""
        labels = (card.name, card.role, str(version), card.teacher or "")
        if self.multiprocess_dir is None:
            with contextlib.suppress(KeyError):
                self.model_info.remove(*labels)
        else:
            self.model_info.labels(*labels).set(0)

    def count_accuracy(self, model: str, predicted: list[int], labels: list[int]) -> None:
        correct = sum(p == t for p, t in zip(predicted, labels, strict=True))
        self.predictions_labeled.labels(model).inc(len(labels))
        self.predictions_correct.labels(model).inc(correct)

    def count_agreement(self, student: str, teacher: str, agree: list[bool], *, source: str) -> None:
        """`source`: where student and teacher answered the same rows: compare, cascade or shadow."""
        agreed = sum(agree)
        if agreed:
            self.agreement.labels(student, teacher, source, "agree").inc(agreed)
        if len(agree) - agreed:
            self.agreement.labels(student, teacher, source, "disagree").inc(len(agree) - agreed)
