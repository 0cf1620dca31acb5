"""Shadow traffic: a share of the requests the student answers also goes to the teacher, after the student's
answer has been sent, so that agreement and the speedup are measured on real traffic, without labels.

On the request path this is one addition and one comparison (`sample`), and, for a sampled request only, a put
on a thread-safe queue once its response is out: nothing else of the shadow runs on the event loop. A thread of
its own, at the lowest CPU priority, runs what is queued as one batch of a teacher session of its own (one
intra-op thread, opened from the teacher's verified file): shadow work takes the CPU that real requests leave,
holds the GIL once per batch, and never waits in the teacher's batcher. While the teacher has requests of its own
queued (busy), jobs are dropped, and so are jobs that find the queue full (`shadow_queue_size`).

Per job: agreement by class name in `distill_agreement_total{source="shadow"}`; both compute times in
`distill_shadow_compute_seconds` (each its rows' share of the batch it ran in: the student's of its batcher run,
the teacher's of the shadow run's CPU time, which its low priority cannot inflate); the teacher's run in its
request and CPU counts; for rows with true labels, its online accuracy. `distill_shadow_requests_total{outcome}`
counts every job: compared, queue_full, teacher_busy, failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np
from prometheus_client import Counter, Histogram

from modelrepo.card import ModelCard
from modelrepo.layout import model_path
from service.errors import ServiceError
from service.loading import Fingerprint, ServedModel, fingerprint
from service.metrics import Metrics
from service.preprocessing import PixelBatch
from service.repository import ModelRegistry
from service.runtimes import RUNTIMES
from service.runtimes.base import Runtime
from service.settings import ThreadConfig

log = logging.getLogger(__name__)

ONE_THREAD = ThreadConfig(intra_op_threads=1, inter_op_threads=1, allow_spinning=False)
LOWEST_PRIORITY = 19  # nice; measured against 0 and 10 in docs/decisions.md
STOP_WAIT_S = 5.0  # at shutdown, for a teacher run under way
GROUP = 32  # queued jobs run as one teacher batch


@dataclass(frozen=True)
class ShadowJob:
    """A request the student answered: what the teacher needs to answer it too, and the student's answer."""

    student: ServedModel
    inputs: PixelBatch | np.ndarray  # friendly: the request's pixels; v2: the student's input tensor
    predicted: np.ndarray  # (N,) the student's class indices
    compute_s: float  # the student's compute time for its rows (their share of the batch they ran in)
    labels: list[int] | None  # true classes, when the request gave them


@dataclass(frozen=True)
class PairFigures:
    """A student and teacher's cards as the shadow compares them, and the metric children it updates."""

    student: ModelCard
    teacher: ModelCard
    same_input: bool  # a v2 request's tensor is the teacher's input too
    student_labels: np.ndarray  # class names, by index
    teacher_labels: np.ndarray
    agree: Counter
    disagree: Counter
    student_compute: Histogram
    teacher_compute: Histogram
    teacher_cpu: Counter

    @classmethod
    def of(cls, student: ModelCard, teacher: ModelCard, metrics: Metrics) -> PairFigures:
        same = student.input.model_dump(exclude={"name"}) == teacher.input.model_dump(exclude={"name"})
        agreement, compute = metrics.agreement, metrics.shadow_compute
        return cls(
            student, teacher, same and student.preprocessing == teacher.preprocessing,
            np.asarray(student.labels), np.asarray(teacher.labels),
            agreement.labels(student.name, teacher.name, "shadow", "agree"),
            agreement.labels(student.name, teacher.name, "shadow", "disagree"),
            compute.labels(student.name, teacher.name, "student"),
            compute.labels(student.name, teacher.name, "teacher"),
            metrics.inference_cpu.labels(teacher.name, teacher.role),
        )  # fmt: skip


def _lower_priority() -> None:
    """This thread only (Linux threads have their own nice value); elsewhere it stays as it is."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_PRIORITY)


class Shadow:
    def __init__(self, rate: float, queue_size: int, registry: ModelRegistry, metrics: Metrics) -> None:
        self.rate = rate
        self.registry = registry
        self.metrics = metrics
        self.queue_size = queue_size
        self._credit = 0.0
        self._jobs: queue.SimpleQueue[ShadowJob | None] = queue.SimpleQueue()  # None: stop
        self._outcomes: dict[str, Counter] = {}
        self._thread: threading.Thread | None = None
        self._session: tuple[Fingerprint, Runtime] | None = None  # the teacher version it was opened from
        self._pairs: dict[tuple[str, str], PairFigures] = {}
        self._warned: set[str] = set()

    @property
    def student(self) -> str | None:
        """The model whose requests are shadowed: the friendly routes' student."""
        return self.registry.pair.student.model

    def sample(self) -> bool:
        """Whether this request is shadowed: exactly `rate` of them, spread evenly."""
        self._credit += self.rate
        if self._credit < 1.0:
            return False
        self._credit -= 1.0
        return True

    def offer(self, job: ShadowJob) -> None:
        """Queue a sampled request once its answer has been sent; dropped (counted) when the queue is full.
        A put on a thread-safe queue: nothing else of the shadow's work runs on the event loop."""
        if self._jobs.qsize() >= self.queue_size:
            self.count("queue_full")
        else:
            self._jobs.put(job)

    async def offer_after_response(self, job: ShadowJob) -> None:
        """`offer` as a response's background task: a coroutine, which starlette runs on the event loop (a plain
        function it would hand to a thread pool, a hop per request)."""
        self.offer(job)

    def count(self, outcome: str) -> None:
        counter = self._outcomes.get(outcome)
        if counter is None:
            counter = self._outcomes[outcome] = self.metrics.shadow_requests.labels(outcome)
        counter.inc()

    def start(self) -> None:
        if self.rate > 0:
            self._thread = threading.Thread(target=self._work, name="shadow", daemon=True)
            self._thread.start()

    async def stop(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._thread.join, STOP_WAIT_S)  # a run under way ends on its own

    def _work(self) -> None:
        """The shadow thread, at the lowest CPU priority: what is queued, in groups of one teacher run each."""
        _lower_priority()
        stopping = False
        while not stopping:
            jobs = [self._jobs.get()]
            with contextlib.suppress(queue.Empty):
                while len(jobs) < GROUP:
                    jobs.append(self._jobs.get_nowait())
            stopping = None in jobs
            group = [job for job in jobs if job is not None]
            try:
                outcomes = self._shadow(group)
            except Exception:  # a bug here must not end shadowing for the rest of the process
                log.exception("shadow: %d requests failed", len(group))
                outcomes = ["failed"] * len(group)
            for outcome in outcomes:
                self.count(outcome)

    def _shadow(self, jobs: list[ShadowJob]) -> list[str]:
        """The jobs' rows in one teacher run (one call from Python: the GIL is held as briefly as can be); each
        job's outcome."""
        try:
            teacher = self.registry.by_role("teacher")
        except ServiceError as exc:
            self._warn(f"shadow: no teacher to send requests to: {exc.message}")
            return ["failed"] * len(jobs)
        if teacher.batcher.queued:  # real teacher traffic waiting: shadow work would only take its CPU
            return ["teacher_busy"] * len(jobs)
        runtime = self._runtime(teacher)
        inputs = [self._teacher_input(teacher, job) for job in jobs]
        runnable = [(job, x) for job, x in zip(jobs, inputs, strict=True) if x is not None]
        if runtime is None or not runnable:
            return ["failed"] * len(jobs)
        feeds = np.concatenate([x for _, x in runnable]) if len(runnable) > 1 else runnable[0][1]
        start = time.thread_time()  # one intra-op thread: this thread's CPU is the whole run's
        scores = runtime.run({teacher.card.input.name: feeds}).outputs[teacher.card.output.name]
        per_row_s = (time.thread_time() - start) / len(feeds)
        offset = 0
        for job, x in runnable:
            self._record(teacher, job, scores[offset : offset + len(x)], per_row_s * len(x))
            offset += len(x)
        return ["compared"] * len(runnable) + ["failed"] * (len(jobs) - len(runnable))

    def _runtime(self, teacher: ServedModel) -> Runtime | None:
        """The shadow's own session of the teacher's served version."""
        if self._session is not None and self._session[0] == teacher.fingerprint:
            return self._session[1]
        repo, card = self.registry.settings.models_dir, teacher.card
        if fingerprint(repo, card, teacher.version) != teacher.fingerprint:  # changed since it was verified
            return None  # the next poll loads it, checked, and the shadow follows
        opened = RUNTIMES[card.platform].load(model_path(repo, card.name, teacher.version), card, ONE_THREAD)
        self._session = (teacher.fingerprint, opened)
        log.info("shadow: sending sampled student requests to %s v%d", card.name, teacher.version)
        return opened

    def _pair(self, student: ServedModel, teacher: ServedModel) -> PairFigures:
        """What every job of this student/teacher pair needs, made once per pair of cards."""
        known = self._pairs.get((student.name, teacher.name))
        if known is None or known.student is not student.card or known.teacher is not teacher.card:
            known = self._pairs[student.name, teacher.name] = PairFigures.of(student.card, teacher.card, self.metrics)
            if not known.same_input:
                self._warn(
                    f"shadow: v2 requests to {student.name!r} are not shadowed: {teacher.name!r} takes another "
                    "input tensor (shape, datatype or preprocessing); /v1/classify requests are"
                )
        return known

    def _teacher_input(self, teacher: ServedModel, job: ShadowJob) -> np.ndarray | None:
        """The teacher's input for the job's rows: made from the request's pixels, or the student's own tensor
        where both take the same tensor."""
        if isinstance(job.inputs, PixelBatch):
            try:
                return job.inputs.tensor(teacher.card.preprocessing, teacher.card.input.datatype)
            except (KeyError, ServiceError):
                self._warn(f"shadow: {teacher.name!r} takes other pixels than this request's: not shadowed")
                return None
        return job.inputs if self._pair(job.student, teacher).same_input else None

    def _record(self, teacher: ServedModel, job: ShadowJob, scores: np.ndarray, cpu_s: float) -> None:
        pair = self._pair(job.student, teacher)
        teacher.metrics.success.inc()
        pair.teacher_cpu.inc(cpu_s)
        taught = scores.argmax(axis=1)  # (N,)
        agreed = int((pair.student_labels[job.predicted] == pair.teacher_labels[taught]).sum())
        pair.agree.inc(agreed)
        pair.disagree.inc(len(taught) - agreed)
        pair.student_compute.observe(job.compute_s)
        pair.teacher_compute.observe(cpu_s)
        if job.labels is not None and all(0 <= v < len(pair.teacher_labels) for v in job.labels):
            self.metrics.count_accuracy(teacher.name, taught.tolist(), job.labels)

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)
