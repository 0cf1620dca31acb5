"""What `bench` measures, as typed values: each target (which server, started how, sent which request) and what
wrk and the service's own metrics saw of it. Written to `<out>/bench-raw/bench.json`; the report reads that back
(`read_bench_run`) and looks targets up by their fields.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import TypeAdapter
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from Python 3.12

from distill_bench.drivers.wrk import WrkResult
from distill_bench.results.machine import Machine
from modelrepo.card import Role

Server = Literal["floor", "service"]
Body = Literal["json", "binary"]  # a v2 JSON tensor, or the v2 binary tensor extension
Load = Literal["sweep", "overload"]  # sweep: from 1 connection up; overload: connections far past capacity
ROLES: tuple[Role, ...] = ("student", "teacher")
BODIES: tuple[Body, ...] = get_args(Body)


@dataclass(frozen=True)
class Target:
    """One server, started one way, sent one request over and over."""

    server: Server
    role: Role  # whose request is sent; the floor answers the student's JSON request with a constant
    body: Body
    batching: bool = True  # the service's batcher; off runs every request alone. The floor has none.
    workers: int = 1  # uvicorn worker processes of the service
    load: Load = "sweep"

    @property
    def label(self) -> str:
        """How tables and plots name it, e.g. "teacher json batching off"."""
        if self.server == "floor":
            return "floor"
        if self.load == "overload":
            return f"{self.role} {self.body} overload"
        if self.workers > 1:
            return f"{self.role} {self.body} {self.workers} workers"
        return f"{self.role} {self.body} batching {'on' if self.batching else 'off'}"


FLOOR = Target("floor", "student", "json", batching=False)


class HandlerMeans(TypedDict):
    """Mean microseconds per request inside the service over one run, from its metrics."""

    handler: float  # the whole handler, parse to response
    queue: float  # waiting in the batcher
    compute: float  # one onnxruntime run (per request where every run holds one, as at 1 connection)


@dataclass(frozen=True)
class TargetResult:
    """One target under each connection count, plus the service's own count of what it answered."""

    target: Target
    runs: list[WrkResult]
    service_counted: float | None = None  # requests the service's metrics saw during the runs; None: the floor
    service_cpu_s: float | None = None  # CPU the service's processes used during the runs
    handler_us: dict[int, HandlerMeans] = field(default_factory=dict)  # connections -> means

    def at(self, connections: int) -> WrkResult:
        return next(r for r in self.runs if r.connections == connections)

    @property
    def requests(self) -> int:
        """Responses wrk received over every run."""
        return sum(r.requests for r in self.runs)

    @property
    def cpu_us_per_request(self) -> float:
        """The service's CPU per response wrk received; NaN for the floor or a target nothing answered."""
        if self.service_cpu_s is None or not self.requests:
            return math.nan
        return self.service_cpu_s / self.requests * 1e6


def find(results: Sequence[TargetResult], target: Target) -> TargetResult | None:
    return next((r for r in results if r.target == target), None)


def get(results: Sequence[TargetResult], target: Target) -> TargetResult:
    """The result of a target the run always measures; KeyError names it otherwise."""
    result = find(results, target)
    if result is None:
        raise KeyError(f"the run has no target {target.label!r}")
    return result


@dataclass(frozen=True)
class InProcess:
    """onnxruntime called in-process: the model's own limits, without HTTP."""

    runs_per_s_one_core: float  # batch 1 on one thread
    p50_us: float
    p99_us: float
    threads: int  # for the two figures below: as many as cores
    us_per_row_batch_1: float
    us_per_row_full_batch: float

    @property
    def batching_gain(self) -> float:
        return self.us_per_row_batch_1 / self.us_per_row_full_batch


@dataclass(frozen=True)
class ServiceRss:
    """MiB resident after each one-worker service's load."""

    on: float  # batching on
    off: float


@dataclass(frozen=True)
class WorkersRss:
    """MiB resident after the several-worker service's load."""

    parent: float  # the process that holds the port and no models
    workers: list[float]  # each worker, with its own models


@dataclass(frozen=True)
class BenchRun:
    started: str  # ISO 8601, UTC
    machine: Machine
    duration_s: int  # of each wrk run
    max_batch_size: int  # the service's batch size with batching on (off: 1)
    targets: list[TargetResult]  # in the order they ran
    in_process: dict[Role, InProcess]
    rss_mb_after_load: ServiceRss
    workers: int  # of the several-worker service
    rss_mb_workers: WorkersRss
    models: dict[Role, str]  # role -> model name

    def get(self, target: Target) -> TargetResult:
        return get(self.targets, target)


_ADAPTER: TypeAdapter[BenchRun] = TypeAdapter(BenchRun)


def bench_json(run: BenchRun) -> dict[str, Any]:
    """The run as JSON-ready data; each target also carries its label, for a person reading the file."""
    data = asdict(run)
    data["targets"] = [{"name": r.target.label, **entry} for r, entry in zip(run.targets, data["targets"], strict=True)]
    return data


def write_bench_run(run: BenchRun, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(bench_json(run), indent=2) + "\n")


def read_bench_run(path: Path) -> BenchRun:
    """A run written by `write_bench_run` (NaN kept: a run nothing answered has NaN means)."""
    return _ADAPTER.validate_python(json.loads(path.read_text()))
