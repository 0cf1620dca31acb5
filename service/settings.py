"""The service's one settings class: environment variables prefixed `DISTILL_`, overridable by CLI flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelrepo.card import VersionPolicy
from modelrepo.host import available_cores
from service.connections import ConnectionLimits, default_max_connections

ENV_PREFIX = "DISTILL_"
ModelControl = Literal["none", "poll", "explicit"]


class ModelOverrides(BaseModel):
    """Per-model overrides of the batching and thread settings; unset fields keep the global value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int | None = Field(default=None, ge=1, description="rows per onnxruntime run")
    max_queue_delay_ms: float | None = Field(default=None, ge=0, description="wait for more rows, ms")
    max_queue_size: int | None = Field(default=None, ge=1, description="queued requests before 503")
    intra_op_threads: int | None = Field(default=None, ge=0, description="onnxruntime intra-op threads")
    version_policy: str | None = Field(default=None, description="versions served at once, over the card's")

    @field_validator("version_policy")
    @classmethod
    def _policy_valid(cls, text: str | None) -> str | None:
        return None if text is None else str(VersionPolicy.parse(text))


@dataclass(frozen=True)
class BatchConfig:
    """The resolved batching policy of one model."""

    max_batch_size: int
    max_queue_delay_s: float
    max_queue_size: int


@dataclass(frozen=True)
class ThreadConfig:
    """The resolved onnxruntime threading of one model."""

    intra_op_threads: int
    inter_op_threads: int
    allow_spinning: bool


class Settings(BaseSettings):
    """Configuration of the inference service. Every field reads `DISTILL_<FIELD>` from the environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True)

    models_dir: Path = Field(
        default=Path("models"),
        description="Model repository: `<dir>/<name>/config.json` and `<dir>/<name>/<version>/model.onnx`; "
        "the highest version of every model is served.",
    )
    host: str = Field(default="127.0.0.1", description="Address to bind (`0.0.0.0` in a container).")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port to bind.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        default="info", description="Log level of the service and uvicorn."
    )
    access_log: bool = Field(default=False, description="Log every request (costs throughput).")
    event_loop: Literal["asyncio", "uvloop"] = Field(
        default="asyncio",
        description="The event loop uvicorn runs. Far past capacity, asyncio answers requests in arrival order, "
        "while uvloop let 1% wait seconds behind newer ones (wrk, 1024 connections, the default student: p99 "
        "3.3 s against 0.41 s). The price, in paired runs here: 0-7% less throughput under wrk at 32 "
        "connections, 4-12% under the soak's locust mix, the same latency at 1 connection. Behind a proxy that "
        "limits connections, uvloop is the faster choice.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        description="uvicorn worker processes; above 1 each loads its own models and `/metrics` sums them all "
        "(prometheus-client multiprocess mode).",
    )
    student: str | None = Field(
        default=None,
        description="Model answering `route=student` (and the student of cascade and compare); default: the "
        "only student distilled from the teacher (quantized copies aside). With several and no setting, those "
        "routes answer 503 naming this setting.",
    )
    teacher: str | None = Field(
        default=None,
        description="Model answering `route=teacher` (and the teacher of cascade and compare); default: the "
        "teacher of `student` when that is set, else the only teacher in the repository. With several and no "
        "setting, those routes answer 503 naming this setting.",
    )
    cascade_threshold: float = Field(
        default=0.8,
        ge=0.0,
        le=1.0,
        description="Cascade: the student answers when its top probability reaches this, otherwise the "
        "teacher does (per request: `?threshold=`).",
    )
    max_batch_size: int = Field(default=32, ge=1, description="Dynamic batcher: most rows per onnxruntime run.")
    max_queue_delay_ms: float = Field(
        default=0.0,
        ge=0.0,
        description="Dynamic batcher: how long a run waits for more rows after the first request; 0 = no "
        "waiting (requests already queued are still batched).",
    )
    max_queue_size: int = Field(
        default=256, ge=1, description="Dynamic batcher: queued requests per model before answering 503."
    )
    retry_after_s: int = Field(default=1, ge=0, description="`Retry-After` seconds sent with a 503.")
    model_overrides: dict[str, ModelOverrides] = Field(
        default_factory=dict,
        description='Per-model overrides as JSON, e.g. `{"fmnist-teacher": {"max_batch_size": 8, '
        '"max_queue_delay_ms": 2, "max_queue_size": 64, "intra_op_threads": 2}}`.',
    )
    intra_op_threads: int = Field(
        default=0,
        ge=0,
        description="onnxruntime intra-op threads of each model that runs in a worker thread; 0 = the cores "
        "available divided among the workers. A model that runs on the event loop (`inline_run_max_us`) uses 1 "
        "unless `model_overrides` gives it more.",
    )
    inter_op_threads: int = Field(default=1, ge=1, description="onnxruntime inter-op threads per model.")
    allow_spinning: bool = Field(
        default=False, description="Let onnxruntime threads spin while idle (burns cores; off for a server)."
    )
    inline_run_max_us: float = Field(
        default=500.0,
        ge=0.0,
        description="Models whose warm full batch (`max_batch_size` rows) runs faster than this run on the "
        "event loop instead of a worker thread (the thread hop costs more than such a run; a slower one "
        "would stall every other request); 0 = always a thread.",
    )
    warmup_runs: int = Field(default=5, ge=1, description="Warm-up runs per model before it turns ready.")
    max_body_bytes: int = Field(default=8 << 20, ge=1024, description="Largest request body, bytes (413).")
    max_request_rows: int = Field(default=256, ge=1, description="Most rows (images) in one request (413).")
    max_image_pixels: int = Field(
        default=4096 * 4096,
        ge=1,
        description="Most decoded pixels (width x height, summed over a request's images) before any is "
        "decoded (413): a small compressed file can declare an enormous image (a decompression bomb).",
    )
    decode_threads: int = Field(
        default=0,
        ge=0,
        description="Threads decoding uploaded images in each worker process (never the event loop, so probes "
        "and other requests go on meanwhile); 0 = half the cores available to each worker, at least 1.",
    )
    decode_pixel_budget: int = Field(
        default=2 * 4096 * 4096,
        ge=1,
        description="Most image pixels being decoded at once in a worker process (4-5 bytes each while an RGBA "
        "image is decoded): an image that does not fit waits up to `decode_wait_s` for room, then its request "
        "gets 503 + Retry-After. At least `max_image_pixels`.",
    )
    decode_wait_s: float = Field(
        default=2.0, ge=0.0, description="Longest an image waits for room in `decode_pixel_budget` before 503."
    )
    max_inflight_requests: int = Field(
        default=512,
        ge=1,
        description="Inference requests (POST) in the process at once; more are answered 503 + Retry-After before "
        "their body is read, so that when parsing, not the model, is the bottleneck the accepted ones stay fast. "
        "Health, metadata and metrics are never refused.",
    )
    request_timeout_s: float = Field(
        default=30.0,
        gt=0.0,
        description="Longest a request may take until its response starts (checked every 0.1 s, or a tenth of "
        "this if shorter); past it the caller gets 504 and its queued rows are dropped, so no request hangs.",
    )
    header_timeout_s: float = Field(
        default=5.0,
        gt=0.0,
        description="Longest a request's headers may take to arrive, from its first byte; past it the client gets "
        "408 and the connection is closed (a client sending headers a byte at a time holds nothing for long).",
    )
    body_timeout_s: float = Field(
        default=5.0,
        gt=0.0,
        description="Longest a request's body may take to arrive once its headers have; past it the client gets "
        "408 and the connection is closed. A request reaches the app (and takes an in-flight slot) only once its "
        "body is in, so slow bodies never starve requests whose body has arrived.",
    )
    idle_timeout_s: float = Field(
        default=5.0,
        gt=0.0,
        description="A connection with no request under way (new, or kept alive after a response) is closed after "
        "this long.",
    )
    max_connections: int = Field(
        default=0,
        ge=0,
        description="Open connections per worker process; past it a new connection closes the oldest idle one, or "
        "is answered 503 when none is idle. 0 = the open-file limit (`ulimit -n`) less a reserve, so that "
        "accepting never fails for lack of a file.",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Web origins (`scheme://host[:port]`) besides the server's own whose pages may call the API "
        'from a browser, as JSON: `["https://dash.example.com"]`; `["*"]` allows any. They get CORS headers. '
        "A request using the service (POST) from any other page's origin is refused with 403; requests without "
        "an `Origin` header (curl, API clients) are always accepted.",
    )
    model_control: ModelControl = Field(
        default="none",
        description="Repository control, as Triton's model-control modes: `none` serves what was there at start; "
        "`poll` rescans the repository every `repository_poll_s` and rolls new versions out live (loaded, warmed, "
        "swapped in; a bad one is reported and the old keeps serving); `explicit` enables `POST "
        "/v2/repository/models/{name}/load` and `/unload`, which need `control_token`. In `none` and `poll` those "
        "answer 403; `POST /v2/repository/index` is read-only and answers in every mode.",
    )
    repository_poll_s: float = Field(
        default=5.0, gt=0.0, description="`model_control=poll`: seconds between two scans of the repository."
    )
    version_policy: str = Field(
        default="latest",
        description="Versions of each model served at once, unless its card's `version_policy` or "
        "`model_overrides` say otherwise: `latest` (the newest present), `latest:N`, or `pinned:V[,V...]`. "
        "Requests without a version go to the newest served.",
    )
    control_token: SecretStr | None = Field(
        default=None,
        description="`model_control=explicit`: the bearer token load and unload require (`Authorization: Bearer "
        "<token>`, compared in constant time). Required in that mode unless `control_allow_unauthenticated`.",
    )
    control_allow_unauthenticated: bool = Field(
        default=False,
        description="`model_control=explicit` without `control_token`: anyone who reaches the port may load and "
        "unload models. Only behind a proxy that authenticates.",
    )
    shadow_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of student-routed requests (`route=student`, the student by name, v2 infer on it) "
        "also sent to the teacher after the student's answer is sent: agreement and both compute times on real "
        'traffic, in `distill_agreement_total{source="shadow"}` and `distill_shadow_*`. Never on a request\'s '
        "latency path; dropped (counted) when the queue is full or the teacher has requests of its own waiting.",
    )
    shadow_queue_size: int = Field(
        default=64, ge=1, description="Shadow requests waiting for the teacher before new ones are dropped."
    )
    shutdown_drain_s: float = Field(
        default=0.0,
        ge=0.0,
        description="On SIGTERM, answer readiness with 503 and keep serving for this long before closing the "
        "listening socket, so a load balancer stops sending first (Kubernetes: the readiness probe's period "
        "times its failure threshold).",
    )
    shutdown_timeout_s: int = Field(
        default=10,
        ge=1,
        description="After the drain, how long in-flight requests may take to complete before they are "
        "cancelled and the process exits (uvicorn's graceful-shutdown timeout).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.student is not None and self.student == self.teacher:
            raise ValueError("student and teacher must be different models")
        if self.decode_pixel_budget < self.max_image_pixels:
            raise ValueError(
                f"decode_pixel_budget ({self.decode_pixel_budget}) must be at least max_image_pixels "
                f"({self.max_image_pixels}), or a legal image could never be decoded"
            )
        VersionPolicy.parse(self.version_policy)  # a clear error at start, not at the first model
        self._check_control()
        return self

    def _check_control(self) -> None:
        if self.model_control != "explicit":
            return
        if self.control_token is None and not self.control_allow_unauthenticated:
            raise ValueError(
                "model_control=explicit lets clients load and unload models: set control_token "
                "(DISTILL_CONTROL_TOKEN), or control_allow_unauthenticated=true behind a proxy that authenticates"
            )
        if self.workers > 1:
            raise ValueError(
                "model_control=explicit needs workers=1: a load or unload request reaches one worker process only; "
                "with several workers use model_control=poll, which every worker follows"
            )

    def version_policy_for(self, model: str, card_policy: VersionPolicy | None) -> VersionPolicy:
        """The model's override, else its card's, else the service's setting."""
        override = self.model_overrides.get(model, ModelOverrides()).version_policy
        if override is not None:
            return VersionPolicy.parse(override)
        return card_policy or VersionPolicy.parse(self.version_policy)

    def uvicorn_options(self) -> dict[str, Any]:
        """What every uvicorn server of the service runs with, one process or several."""
        return {
            "host": self.host,
            "port": self.port,
            "log_level": self.log_level,
            "access_log": self.access_log,
            "loop": self.event_loop,
            "http": "service.protocol:ServiceHttpProtocol",
            "timeout_graceful_shutdown": self.shutdown_timeout_s,  # each worker drains and shuts down on its own
        }

    def connection_limits(self) -> ConnectionLimits:
        return ConnectionLimits(
            header_timeout_s=self.header_timeout_s,
            body_timeout_s=self.body_timeout_s,
            idle_timeout_s=self.idle_timeout_s,
            max_connections=self.max_connections or default_max_connections(),
            max_body_bytes=self.max_body_bytes,
        )

    def decoding_threads(self) -> int:
        return self.decode_threads or max(1, available_cores() // self.workers // 2)

    def batching_for(self, model: str) -> BatchConfig:
        o = self.model_overrides.get(model, ModelOverrides())
        delay_ms = o.max_queue_delay_ms if o.max_queue_delay_ms is not None else self.max_queue_delay_ms
        return BatchConfig(
            max_batch_size=o.max_batch_size or self.max_batch_size,
            max_queue_delay_s=delay_ms / 1000.0,
            max_queue_size=o.max_queue_size or self.max_queue_size,
        )

    def threads_for(self, model: str, *, inline: bool = False) -> ThreadConfig:
        """`inline`: the model runs on the event loop (small and fast). It then gets one intra-op thread unless its
        own override says otherwise: waking a second thread costs more than it saves (student, batch 1, here:
        39 us with 2 threads, 22 us with 1)."""
        o = self.model_overrides.get(model, ModelOverrides())
        shared = max(1, available_cores() // self.workers)  # workers share the cores
        if o.intra_op_threads is not None:
            intra = o.intra_op_threads or shared
        elif inline:
            intra = 1
        else:
            intra = self.intra_op_threads or shared
        return ThreadConfig(
            intra_op_threads=intra,
            inter_op_threads=self.inter_op_threads,
            allow_spinning=self.allow_spinning,
        )
